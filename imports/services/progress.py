"""A run's progress against the source's total: what is stored, what is shown.

The connector says how much its source holds when it can (``progress_total``
in ``progress_unit``: a CSV file's bytes, an SQL query's estimated rows, an
API's total); the pipeline stores it with what was read (``progress_done``:
bytes read, or rows read) about once a second. The admin shows a percent,
the rows a second and an estimate of the time left from those; without a
total the progress stays indeterminate.
"""

import datetime
from dataclasses import dataclass

from django.utils import timezone

from connectors.base import BaseConnector
from imports.models import ImportRun

# An estimate (an SQL source's) may fall short of the rows read: the bar
# stops short of full until the extraction ends.
ACTIVE_CEILING = 0.99


def progress_fields(
    connector: BaseConnector, *, rows_read: int, finished: bool = False
) -> dict:
    """The run's progress fields as the connector reports them now.

    Once the extraction has ``finished``, the total is what was read: rows
    exactly, and the whole of a file's bytes.
    """
    total = connector.progress_total
    if total is None:
        return {"rows_read": rows_read}
    unit = connector.progress_unit
    if unit == "rows":
        done = rows_read
    else:
        done = connector.progress_done()
        done = total if done is None else done
    if finished:
        total = done = rows_read if unit == "rows" else total
    return {
        "rows_read": rows_read,
        "progress_total": total,
        "progress_done": min(done, total) if unit != "rows" else done,
        "progress_unit": unit,
    }


@dataclass(frozen=True)
class RunProgress:
    """What the admin shows of a run's progress."""

    fraction: float | None  # 0..1 when the total is known
    rows_per_second: float | None
    remaining: datetime.timedelta | None  # the estimated time left

    @property
    def percent(self) -> int | None:
        return None if self.fraction is None else int(self.fraction * 100)


def run_progress(
    run: ImportRun, *, now: datetime.datetime | None = None
) -> RunProgress:
    """A run's fraction done, rate and time left, from its stored fields."""
    now = now or timezone.now()
    elapsed = (
        ((run.finished_at or now) - run.started_at).total_seconds()
        if run.started_at
        else 0.0
    )
    rate = run.rows_read / elapsed if elapsed > 0 and run.rows_read else None
    fraction = remaining = None
    if run.status == ImportRun.Status.SUCCEEDED:
        fraction = 1.0
    elif run.progress_total and run.progress_done is not None:
        fraction = min(run.progress_done / run.progress_total, 1.0)
        if run.is_active:
            if run.extracted_at is None:
                fraction = min(fraction, ACTIVE_CEILING)
            if 0 < fraction < 1 and elapsed > 0:
                remaining = datetime.timedelta(
                    seconds=round(elapsed * (1 - fraction) / fraction)
                )
    return RunProgress(fraction=fraction, rows_per_second=rate, remaining=remaining)
