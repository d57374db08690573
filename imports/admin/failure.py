"""The failure box at the top of a run's page: what, where, what to do.

An operator opening a failed run reads why before anything else, as
Airbyte shows each job's failure reason first: the error's class and
message, the stage it stopped in, and the next step (with the Retry button).
"""

from django.utils.translation import gettext as _

from imports.admin.display import error_stage_label
from imports.models import ImportRun
from imports.services.dashboard import run_error_stage

# Error classes with an advice of their own; the others get the general one.
DELETION_LIMIT = "DeletionLimitExceeded"
LOCK_ERRORS = ("LockLost", "ForceUnlocked", "WorkerLost", "Reaped")


def failure_context(run: ImportRun, *, can_retry: bool) -> dict | None:
    """What ``_failure.html`` shows for ``run``; None for a run without an
    error to show (succeeded, or active with no failed attempt yet)."""
    if run.status == ImportRun.Status.SUCCEEDED or not (
        run.error_class or run.error_message
    ):
        return None
    titles = {
        ImportRun.Status.FAILED: _("Why the run failed"),
        ImportRun.Status.CANCELLED: _("Why the run was cancelled"),
    }
    return {
        "title": titles.get(run.status, _("Why the last attempt failed")),
        "error_class": run.error_class,
        "message": run.error_text,
        "stage": error_stage_label(run_error_stage(run)),
        "advice": failure_advice(run, can_retry=can_retry),
        "next_attempt_at": (
            run.next_attempt_at if run.status == ImportRun.Status.RETRYING else None
        ),
    }


def failure_advice(run: ImportRun, *, can_retry: bool) -> str:
    """The next step, in one sentence."""
    if run.is_active:
        return _("The run retries by itself; cancel it if the cause will not go away.")
    if run.status == ImportRun.Status.CANCELLED:
        return _("Nothing was written. Retry to import the project again.")
    if run.error_class == DELETION_LIMIT:
        return _(
            "Nothing was deleted. Check that the source is complete, then retry "
            "allowing the deletions, or raise the project's deletion limit."
        )
    if run.error_class in LOCK_ERRORS:
        return _(
            "The run's worker lost its project; nothing was written. Retry the run."
        )
    if not can_retry:
        return _(
            "Fix the source or the project's settings; an operator with the "
            "retry permission can then retry the run."
        )
    return _("Fix the source or the project's settings, then retry the run.")
