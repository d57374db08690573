"""Waiting for runs to end, with a progress bar for people at a terminal."""

import time
from collections import Counter

from django.db.models import Count

from imports.models import ImportRun

BAR_WIDTH = 30
# Large selections are polled in slices, so no query carries an unbounded
# IN list; the slices together are still one poll.
POLL_SLICE = 5000


def run_status_tally(run_ids: list[int]) -> Counter:
    """How many of the runs are in each status (one query per 5,000 runs)."""
    tally = Counter()
    for start in range(0, len(run_ids), POLL_SLICE):
        rows = (
            ImportRun.objects.filter(pk__in=run_ids[start : start + POLL_SLICE])
            .order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
        )
        tally.update(dict(rows))
    return tally


def describe(tally: Counter, total: int) -> str:
    done = sum(tally[s] for s in ImportRun.FINAL_STATUSES)
    parts = [f"{done}/{total} finished"]
    for status in (*ImportRun.ACTIVE_STATUSES, *ImportRun.FINAL_STATUSES):
        if tally[status]:
            parts.append(f"{status} {tally[status]}")
    return ", ".join(parts)


def bar(tally: Counter, total: int) -> str:
    done = sum(tally[s] for s in ImportRun.FINAL_STATUSES)
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {describe(tally, total)}"


def runs_wait(
    run_ids: list[int],
    *,
    stream,
    interval: float = 1.0,
    timeout: float | None = None,
) -> Counter | None:
    """Poll the runs until none is active; return the final tally.

    Draws a bar redrawn in place on ``stream`` when it is a terminal, and
    a plain line per change otherwise (logs, pipes, CI). Returns None when
    ``timeout`` seconds passed first.
    """
    total = len(run_ids)
    tty = hasattr(stream, "isatty") and stream.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        tally = run_status_tally(run_ids)
        finished = sum(tally[s] for s in ImportRun.FINAL_STATUSES) >= total
        if tty:
            stream.write(f"\r{bar(tally, total)}\x1b[K")
            if finished:
                stream.write("\n")
            stream.flush()
        elif tally != last:
            stream.write(describe(tally, total) + "\n")
            stream.flush()
        last = tally
        if finished:
            return tally
        if deadline is not None and time.monotonic() >= deadline:
            if tty:
                stream.write("\n")
            return None
        time.sleep(interval)
