"""Auto-pause: a project that keeps failing stops importing until resumed.

A paused project is refused by the guard (``ProjectPaused``) whatever asks:
the admin, a command, the API or a beat tick (recorded as skipped). Pause
and resume are project events; each is one conditional update, so two
failures or two operators at once pause or resume once.
"""

from django.db import transaction
from django.utils import timezone

from connectors.messages import Message, gettext_noop, message_fields
from imports import actors
from imports.models import ImportRun, Project, ProjectEvent

AUTO_PAUSE_ACTOR = actors.AUTO_PAUSE


def project_pause_auto(
    *, project: Project, run: ImportRun, failures: int, error: str = ""
) -> bool:
    """Pause ``project`` after ``failures`` failed runs in a row, the last
    ``run``; False if it was paused already. Called inside the transaction
    that fails the run."""
    now = timezone.now()
    details = {
        "failures": failures,
        "run_id": run.pk,
        "error": (error or "")[:500],
        "threshold": project.auto_pause_after,
    }
    with transaction.atomic(savepoint=False):
        paused = Project.objects.filter(pk=project.pk, paused_at__isnull=True).update(
            paused_at=now, pause_details=details
        )
        if paused:
            ProjectEvent.objects.create(
                project=project,
                kind=ProjectEvent.Kind.PAUSED,
                actor=AUTO_PAUSE_ACTOR,
                at=now,
                **message_fields(
                    Message(
                        gettext_noop(
                            "Paused after %(failures)s failed runs in a row (the "
                            "last: run #%(run)s)."
                        ),
                        failures=failures,
                        run=run.pk,
                    )
                ),
                data=details,
            )
    if paused:
        project.paused_at, project.pause_details = now, details
    return bool(paused)


def project_resume(*, project: Project, resumed_by: str) -> bool:
    """Resume a paused project; False if it was not paused.

    Its failure streak starts again from here: the next failure does not
    pause it at once.
    """
    now = timezone.now()
    with transaction.atomic():
        resumed = Project.objects.filter(pk=project.pk, paused_at__isnull=False).update(
            paused_at=None, pause_details={}
        )
        if resumed:
            ProjectEvent.objects.create(
                project=project,
                kind=ProjectEvent.Kind.RESUMED,
                actor=resumed_by[:150],
                at=now,
                **message_fields(
                    Message(gettext_noop("Resumed; imports are accepted again."))
                ),
                data={"paused": project.pause_details},
            )
    if resumed:
        project.paused_at, project.pause_details = None, {}
    return bool(resumed)
