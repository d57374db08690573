"""The one shape of the admin's bulk actions: a service per object, one report.

An action is one decorated line of intent, as django-celery-beat's
``enable_tasks``/``disable_tasks`` are::

    @admin.action(description=_("Retry selected failed runs"), permissions=[...])
    def retry_selected(self, request, queryset):
        apply_each(self, request, queryset.order_by("pk"), self._retry_one,
                   done=RETRIED, not_done=NOT_RETRIED)

``apply_each`` calls the service on each object, collects the refusals
(``ImportRequestError``) and reports once: SUCCESS when all went through,
WARNING when some did, ERROR when none did, naming why the others did not.
"""

from collections.abc import Callable, Iterable

from django.contrib import messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from imports.exceptions import ImportRequestError, ProjectBusy

# How many reasons a summary names before "and N more".
SUMMARY_REASONS = 10


def summary_level(succeeded: int, failed: int) -> int:
    if not failed:
        return messages.SUCCESS
    return messages.WARNING if succeeded else messages.ERROR


def summary_message(
    succeeded_text: str, failed_text: str, failures: list, *, reason=str
) -> str:
    """``succeeded_text``, then why the others failed (their messages).

    ``reason`` renders each failure; one that returns HTML (a SafeString)
    makes the whole summary HTML, every other part escaped.
    """
    if not failures:
        return succeeded_text
    reasons = [reason(exc) for exc in failures[:SUMMARY_REASONS]]
    if len(failures) > SUMMARY_REASONS:
        reasons.append(
            gettext("and %(count)d more") % {"count": len(failures) - SUMMARY_REASONS}
        )
    if reason is str:
        return f"{succeeded_text} {failed_text} {'; '.join(reasons)}"
    return format_html(
        "{} {} {}",
        succeeded_text,
        failed_text,
        format_html_join("; ", "{}", zip(reasons)),
    )


def apply_each(
    modeladmin,
    request,
    objects: Iterable,
    operation: Callable,
    *,
    done,
    not_done,
    reason=str,
    describe: Callable | None = None,
) -> int:
    """Call ``operation(obj)`` for each object and report the outcome once.

    ``done`` and ``not_done`` are ``ngettext_lazy`` texts whose number is
    ``count`` ("%(count)d run was retried.", "%(count)d was not retried:").
    A refusal of one object does not stop the others. Returns how many went
    through. ``reason(exc)`` renders a refusal (``str`` unless given: HTML
    such as the busy message with a link to the active run), and
    ``describe(results)`` what went through (the new runs, linked).
    """
    succeeded, failures, results = 0, [], []
    for obj in objects:
        try:
            results.append(operation(obj))
        except ImportRequestError as exc:
            failures.append(exc)
        else:
            succeeded += 1
    if not succeeded and len(failures) == 1 and isinstance(failures[0], ProjectBusy):
        # The busy rejection is shown exactly, the way every entry point
        # shows it (other systems match on that text).
        text = reason(failures[0])
    else:
        text = summary_message(
            done % {"count": succeeded},
            not_done % {"count": len(failures)},
            failures,
            reason=reason,
        )
    if describe is not None and results:
        text = format_html("{} {}", text, describe(results))
    modeladmin.message_user(request, text, summary_level(succeeded, len(failures)))
    return succeeded
