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
"""

import logging
import time

from celery import schedules
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from imports.locks import redis_client

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


class ImporthubScheduler(DatabaseScheduler):
    _generation = 0
    _heap_generation = -1
    _last_change_check = 0.0

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
        window = tick_window_seconds(entry.schedule)
        if window is not None and not self._tick_claim(entry.name, window):
            logger.info("tick of %s already dispatched by another beat", entry.name)
            return None
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def _tick_claim(self, name: str, window: float) -> bool:
        key = f"{settings.IMPORTHUB_REDIS_PREFIX}beat-tick:{name}"
        try:
            return bool(redis_client().set(key, b"1", nx=True, px=int(window * 1000)))
        except Exception:
            # Without Redis the guard refuses the tick anyway; do not drop it
            # here, so the refusal is recorded on the project.
            return True
