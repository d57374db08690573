"""One attempt of a run on a worker: its fenced writes and its heartbeat.

An attempt is identified by its fencing token. Every write it makes to its
run, events included, is conditional on the run still running under that
token, so an attempt that was paused past its lease (and reaped, and perhaps
retried elsewhere) can never overwrite or add to what happened after it::

    t0  attempt 1 starts (fence 7), then its worker pauses
    t1  the reaper finds no heartbeat: the run is retrying, new lock token
    t2  attempt 2 starts (fence 8) and succeeds
    t3  attempt 1 wakes up: each of its writes matches no row (fence 7 is
        not the run's), so neither the run nor its log changes
"""

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from django.db import (
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from connectors.messages import Message
from imports import actors
from imports.models import ImportRun, ImportRunEvent
from imports.services.events import import_run_event_record
from locking import Lock

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Database errors that mean "the server went away", worth a retry: Django's,
# and psycopg's own from the staging COPY, which bypasses Django's wrappers
# (AdminShutdown, a cut connection).
DATABASE_GONE = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
WORKER = actors.WORKER


def worker_identity() -> dict[str, Any]:
    """Where an attempt runs: the host and process, recorded at its start so
    that an operator can tell which worker holds a project."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def with_database(
    action: Callable[[], T], *, attempts: int = 20, delay: float = 1.0
) -> T:
    """Run ``action``, reconnecting while the database restarts.

    A worker whose database restarted mid-run still owes the run its final
    state; without it the reaper would have to find the run.
    """
    for attempt in range(attempts):
        try:
            return action()
        except DATABASE_GONE:
            if attempt == attempts - 1:
                raise
            connection.close()
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class Attempt:
    """One attempt of a run on this worker: its identity is its fence."""

    run: ImportRun
    fence: int
    connector_id: int
    lock: Lock

    @property
    def guards(self) -> dict[str, Any]:
        """The conditions of every write this attempt makes to its run."""
        return {"fencing_token": self.fence}

    def runs(self):
        """The run's row, if this attempt still owns it (running, same fence)."""
        return ImportRun.objects.filter(
            pk=self.run.pk, status=ImportRun.Status.RUNNING, fencing_token=self.fence
        )

    def update(self, **fields: Any) -> bool:
        """Write fields of the run (never its status) while this attempt owns it."""
        if "status" in fields:
            raise TypeError("status changes go through imports.services.transitions")
        return bool(self.runs().update(**fields))

    def record(
        self,
        kind: str,
        *,
        message: Message | str = "",
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Add an event to the run's log, only while this attempt owns the run.

        The no-op UPDATE locks the run's row for the transaction, so a reaper
        or a cancel cannot slip between the check and the event.
        """

        def write() -> bool:
            with transaction.atomic():
                if not self.runs().update(heartbeat_at=F("heartbeat_at")):
                    return False
                import_run_event_record(
                    run=self.run, kind=kind, actor=WORKER, message=message, data=data
                )
                return True

        return with_database(write, attempts=5)

    def is_current(self) -> bool:
        """Whether the run's fence is still this attempt's (in any status)."""
        try:
            return with_database(
                ImportRun.objects.filter(
                    pk=self.run.pk, fencing_token=self.fence
                ).exists,
                attempts=5,
            )
        except DATABASE_GONE:
            return False

    def last_extraction(self) -> ImportRunEvent | None:
        """The event of the latest finished extraction of this run, if any."""
        if self.run.extracted_at is None:
            return None
        return (
            self.run.events.filter(kind=ImportRunEvent.Kind.EXTRACTED)
            .order_by("-at")
            .first()
        )


class Heartbeat:
    """Called by the renewer's thread after each renewal of the lease."""

    def __init__(self, attempt: Attempt):
        self.attempt = attempt
        self.stopped = False

    def __call__(self) -> None:
        try:
            if not self.attempt.update(heartbeat_at=timezone.now()):
                # Cancelled, reaped or force-unlocked from outside: stop at
                # the next batch.
                self.stopped = True
        except Exception:
            logger.exception("heartbeat of run %s failed", self.attempt.run.pk)
        finally:
            # The renewer's thread must not keep a connection per run.
            connections.close_all()
