"""A beat scheduler for many schedules: django-celery-beat's, made O(1) per
tick, with duplicate ticks of a second beat process dropped.

``DatabaseScheduler`` as shipped spends O(n) per dispatched entry: on every
tick celery's ``Scheduler.tick`` calls ``schedules_equal``, which compares
every entry of the old and the new schedule, and ``schedule`` queries the
database for changes. With 10,000 schedules due in one minute that is 10^8
entry comparisons, minutes of CPU. Here the comparison is a generation
number bumped whenever the schedule is reloaded from the database, the
change check runs at most once a second, and ``sync`` writes the run times
of all dispatched entries with one bulk UPDATE instead of two queries and a
signal per entry.

Two beat processes (a failover pair, or a mistake) fire the same ticks. The
guard alone already keeps them from running a project twice at once and
from publishing twice (the second beat's guard call is refused before
publishing). A tick key in Redis also drops the second beat's copy of a
tick that the first beat already dispatched, so a project whose import
finished in between is not imported a second time for one tick::

    beat A  10:05:00.2  SET tick:<entry> NX PX 30000 -> OK    guard -> run 1
    run 1   10:05:00.9  succeeded
    beat B  10:05:01.4  SET tick:<entry> NX PX 30000 -> nil   dropped

Dispatching is the guard's work, and the guard takes many projects in one
call (one Redis round trip, one statement, one producer connection). So
the ticks of scheduled imports are not dispatched one by one: the loop
collects due entries of ``imports.project_import_scheduled`` and hands them
over in batches of up to ``IMPORTHUB_BEAT_BATCH`` (flushed as soon as no
entry is due), whose tick keys are claimed in one pipelined round trip and
whose projects go through the guard's bulk call, on a small pool of
threads (``IMPORTHUB_BEAT_DISPATCH_THREADS``, each with its own database
connection) so that the loop keeps picking due entries meanwhile. Any other
entry is applied as celery applies it. The run times the loop records and
``sync`` writes are shared under one lock.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from celery import schedules
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from imports.locks import beat_ticks_claim

logger = logging.getLogger(__name__)

# A crontab fires at most once a minute; its ticks are deduplicated for
# half of that.
CRONTAB_TICK_SECONDS = 30.0
# How often (at most) the database is asked whether schedules changed.
CHANGE_CHECK_SECONDS = 1.0


def tick_window_seconds(schedule) -> float | None:
    """How long a dispatched tick of this schedule blocks its copies."""
    if isinstance(schedule, schedules.crontab):
        return CRONTAB_TICK_SECONDS
    if isinstance(schedule, schedules.schedule):
        return max(schedule.run_every.total_seconds() / 2, 0.5)
    return None


#: The task of a project's scheduled import (see ``services/schedules.py``).
SCHEDULED_TASK = "imports.project_import_scheduled"


class ImporthubEntry(ModelEntry):
    """A schedule entry whose next tick reuses what it parsed.

    django-celery-beat builds the next entry anew from the same row after
    every tick, parsing the crontab and decoding the arguments again: with
    10,000 schedules due in one minute that was about half of beat's own
    time. Only the run time and count change (a changed row is reloaded
    through ``schedule_changed``), so the next entry is a copy with those
    two updated.
    """

    def __next__(self):
        self.model.last_run_at = self._default_now()
        self.model.total_run_count += 1
        self.model.no_changes = True
        # Not copy.copy: an entry pickles itself (``__reduce__``) with the
        # arguments of celery's own entry class.
        entry = object.__new__(type(self))
        entry.__dict__.update(self.__dict__)
        entry.options = {**self.options, "headers": dict(self.options["headers"])}
        entry.total_run_count = self.model.total_run_count
        entry.last_run_at = self.model.last_run_at
        return entry


class ImporthubScheduler(DatabaseScheduler):
    Entry = ImporthubEntry
    _generation = 0
    _heap_generation = -1
    _last_change_check = 0.0

    def __init__(self, *args, **kwargs):
        self._entries_lock = threading.RLock()
        self._pool = None
        self._batch: list = []
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        if self._batch and (
            interval or len(self._batch) >= settings.IMPORTHUB_BEAT_BATCH
        ):
            batch, self._batch = self._batch, []
            pool = self._dispatch_pool()
            if pool is None:
                self._dispatch_batch(batch)
            else:
                pool.submit(self._dispatch_batch, batch)
        return interval

    def _dispatch_pool(self) -> ThreadPoolExecutor | None:
        threads = getattr(settings, "IMPORTHUB_BEAT_DISPATCH_THREADS", 8)
        if threads <= 1:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=threads, thread_name_prefix="beat-dispatch"
            )
        return self._pool

    def apply_entry(self, entry, producer=None):
        if entry.task == SCHEDULED_TASK and _project_id(entry) is not None:
            # Dispatched with the batch, when the tick loop flushes it.
            self._batch.append(entry)
            return
        pool = self._dispatch_pool()
        if pool is None:
            return super().apply_entry(entry, producer=producer)
        # The guard publishes with the app's producer pool, not beat's
        # single producer, so the threads share no connection.
        pool.submit(super().apply_entry, entry, None)

    def reserve(self, entry):
        with self._entries_lock:
            return super().reserve(entry)

    def _dispatch_batch(self, entries) -> None:
        """Claim the entries' ticks (dropping those another beat claimed)
        and import their projects with one guard call."""
        from imports.services.schedules import projects_import_scheduled

        try:
            claimed = self._ticks_claim(entries)
            if claimed:
                # As celery's beat says it of an entry it applies; one line
                # for a batch (10,000 lines a minute would cost seconds).
                more = f" and {len(claimed) - 1} more" if len(claimed) > 1 else ""
                logger.info(
                    "Scheduler: Sending due task %s%s (%s)",
                    claimed[0].name,
                    more,
                    SCHEDULED_TASK,
                )
            project_ids = [_project_id(entry) for entry in claimed]
            if project_ids:
                projects_import_scheduled(project_ids=project_ids)
        except Exception:
            logger.exception("a batch of %s scheduled imports failed", len(entries))
        finally:
            from django.db import close_old_connections

            close_old_connections()
            with self._entries_lock:
                self._tasks_since_sync += len(entries)
                if self.should_sync():
                    self._do_sync()

    def _ticks_claim(self, entries) -> list:
        windows = [tick_window_seconds(entry.schedule) for entry in entries]
        claimable = [(e, w) for e, w in zip(entries, windows, strict=True) if w]
        try:
            claims = beat_ticks_claim([(e.name, w) for e, w in claimable])
        except Exception:
            # Without Redis the guard refuses the ticks anyway; do not drop
            # them here, so the refusals are recorded on the projects.
            return list(entries)
        dropped = {
            e.name for (e, _w), ok in zip(claimable, claims, strict=True) if not ok
        }
        for name in dropped:
            logger.info("tick of %s already dispatched by another beat", name)
        return [entry for entry in entries if entry.name not in dropped]

    def close(self):
        if self._batch:
            batch, self._batch = self._batch, []
            self._dispatch_batch(batch)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        super().close()

    def all_as_schedule(self):
        self._generation += 1
        return super().all_as_schedule()

    def schedules_equal(self, *args, **kwargs):
        if self._heap_invalidated:
            self._heap_invalidated = False
            return False
        equal = self._heap_generation == self._generation
        self._heap_generation = self._generation
        return equal

    def schedule_changed(self):
        now = time.monotonic()
        if now - self._last_change_check < CHANGE_CHECK_SECONDS:
            return False
        self._last_change_check = now
        return super().schedule_changed()

    def sync(self):
        with self._entries_lock:
            dirty, self._dirty = self._dirty, set()
            models = [
                self._schedule[name].model for name in dirty if name in self._schedule
            ]
        try:
            PeriodicTask.objects.bulk_update(
                models, ["last_run_at", "total_run_count"], batch_size=1000
            )
        except Exception:
            logger.exception("could not save the run times of %s entries", len(dirty))
            with self._entries_lock:
                self._dirty |= dirty

    def update_from_dict(self, mapping):
        # Two beats starting together both create the default entries
        # (celery.backend_cleanup); the loser of that race reads the row
        # the winner wrote instead of logging an error.
        entries = {}
        for name, fields in mapping.items():
            for attempt in (1, 2):
                try:
                    entry = self.Entry.from_entry(name, app=self.app, **fields)
                except (IntegrityError, ValidationError):
                    if attempt == 2:
                        logger.exception("cannot add schedule entry %r", name)
                    continue
                if entry.model.enabled:
                    entries[name] = entry
                break
        self.schedule.update(entries)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if not self._ticks_claim([entry]):
            return None
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)


def _project_id(entry) -> int | None:
    """The project a scheduled import's entry names, or None."""
    try:
        value = (entry.kwargs or {}).get("project_id")
    except AttributeError:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
