"""The product's own actors, named in the reader's language when shown.

A run's ``requested_by`` and an event's ``actor`` hold either a user's name
(shown as it is) or one of these fixed names, stored in English so that
code and logs can match on them, and translated at display.
"""

from django.utils.translation import gettext_lazy as _

WORKER = "worker"
SCHEDULER = "scheduler"
SCHEDULE = "schedule"
REAPER = "reaper"
CODE = "code"
AUTO_PAUSE = "auto-pause"

ACTOR_LABELS = {
    WORKER: _("worker"),
    SCHEDULER: _("scheduler"),
    SCHEDULE: _("schedule"),
    REAPER: _("sweep"),
    CODE: _("code"),
    AUTO_PAUSE: _("auto-pause"),
}


def actor_label(actor: str) -> str:
    """``actor`` in the active language if it is one of the product's own,
    else as written (a user's name, a command's)."""
    label = ACTOR_LABELS.get(actor)
    return str(label) if label is not None else actor
