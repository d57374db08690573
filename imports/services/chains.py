"""Runs chained by operators' retries: the try number across the chain.

An operator's retry is a new run (``retry_of`` names the one it retries),
whose own ``attempt`` starts at 1 again. Counted as Airflow counts a task
instance's tries, its try number goes on from the runs before it: the
attempts of every run up the chain, plus its own.
"""

from collections.abc import Iterable

from imports.models import ImportRun


def run_chain_tries(runs: Iterable[ImportRun]) -> dict[int, int]:
    """The try number of each run across its chain of retries, by id.

    One query per generation of ancestors not among ``runs`` (a list page
    of retries of retries costs a few), none for runs that retry nothing.
    """
    runs = list(runs)
    known = {run.pk: (run.retry_of_id, run.attempt) for run in runs}
    missing = {parent for parent, _ in known.values() if parent and parent not in known}
    while missing:
        found = ImportRun.objects.filter(pk__in=missing).values_list(
            "pk", "retry_of_id", "attempt"
        )
        missing = set()
        for pk, parent, attempt in found:
            known[pk] = (parent, attempt)
            if parent and parent not in known:
                missing.add(parent)
        # A parent deleted meanwhile ends its chain (retry_of is SET_NULL).
    return {run.pk: _tries(run.pk, known) for run in runs}


def _tries(pk: int | None, known: dict) -> int:
    total, seen = 0, set()
    while pk is not None and pk in known and pk not in seen:
        seen.add(pk)
        pk, attempt = known[pk]
        total += attempt
    return total
