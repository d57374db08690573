"""A notification's subject and text, in its channel's language.

The outbox row holds facts only (``Notification.payload``); the words are
chosen when it is sent, in the channel's language, or the site's.
"""

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from connectors.messages import message_render
from imports.models import ImportRun, Notification


def notification_render(notification: Notification) -> tuple[str, str]:
    """``(subject, text)`` of ``notification``."""
    language = notification.channel.language or settings.LANGUAGE_CODE
    with translation.override(language):
        return _render(notification)


def _render(notification: Notification) -> tuple[str, str]:
    data = notification.payload
    if notification.event == Notification.Event.TEST:
        subject = _("importhub: test notification of “%(channel)s”") % {
            "channel": notification.channel.name
        }
        text = _(
            "This is a test notification sent by %(user)s. If it reached you, "
            "the channel “%(channel)s” works."
        ) % {
            "user": data.get("requested_by") or "?",
            "channel": notification.channel.name,
        }
        return subject, text
    project, run = data["project"], data["run"]
    status = dict(ImportRun.Status.choices).get(run["status"], run["status"])
    facts = {
        "project": project["name"],
        "run": run["id"],
        "count": data.get("consecutive_failures", 0),
    }
    if notification.event == Notification.Event.RECOVERED:
        subject = _("importhub: “%(project)s” recovered") % facts
        lines = [
            _(
                "Run #%(run)s of “%(project)s” succeeded after %(count)s failed "
                "runs in a row."
            )
            % facts
        ]
    else:
        subject = _("importhub: run #%(run)s of “%(project)s” failed") % facts
        lines = [
            _(
                "Run #%(run)s of “%(project)s” failed; %(count)s runs of the "
                "project have failed in a row."
            )
            % facts,
            _("Error: %(error)s")
            % {
                "error": message_render(
                    run.get("error_message") or "",
                    run.get("error_message_id") or "",
                    run.get("error_message_params"),
                )
                or "—"
            },
        ]
        if project.get("paused"):
            lines.append(
                _(
                    "The project was paused and accepts no imports until an "
                    "operator resumes it."
                )
            )
    lines += [
        _("Status: %(status)s") % {"status": status},
        _("Run: %(url)s") % {"url": run["url"]},
        _("Project: %(url)s") % {"url": project["url"]},
    ]
    return subject, "\n".join(str(line) for line in lines)
