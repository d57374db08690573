"""The load of a typed stage: contract, merge and state row in one transaction.

``table_load`` runs inside the app's transaction that ends the run (the
caller holds the run's and the project's row locks) and opens the target's
own transaction inside it: the same one, as a savepoint, when the table is
in the app's database; a second one when it is in a destination. There it
claims the project's state row (``Target.state_claim``: a stale fence is
refused), plans the schema under the project's policy, merges, records the
columns and counts in the state row and calls ``finish`` (the run's
SUCCEED), so that the data commits only if the run's end can be recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import DataError, IntegrityError
from django.utils import timezone

from imports.cursors import cursor_compare, cursor_config, cursor_json
from imports.models import Project

from .results import REJECTED_SAMPLES, LoadResult
from .safety import DeletionLimit
from .table_merge import Misfit, TableMerge
from .table_schema import (
    Column,
    Plan,
    SchemaViolation,
    schema_plan,
    violations_raise,
)
from .table_stage import TableStage

#: How many times a merge is planned again after values did not fit.
REPLANS = 4


def table_load(
    *,
    project: Project,
    run_id: int,
    fence: int,
    stage: TableStage,
    result: LoadResult,
    replace: bool,
    deletion_limit: DeletionLimit,
    finish: Callable[[list[dict]], None],
) -> LoadResult:
    """Merge the typed stage into the project's table; fill ``result``.

    ``finish(changes)`` is called last, inside the target's transaction,
    with the schema changes made.

    Raises:
        FenceRejected: the destination holds a newer fencing token.
        SchemaViolation: the source does not fit the table's contract.
        DeletionLimitExceeded: see ``DeletionLimit``.
    """
    target = stage.target
    replace = replace and not result.incremental
    with target.atomic():
        target.tune_for_merge()
        previous = target.state_claim(fence=fence, run_id=run_id)
        if result.source_unchanged:
            result.cursor_after = result.cursor_before
            target.state_finish(
                columns=previous.columns if previous else [],
                counts=result.counts(),
                committed_at=timezone.now().isoformat(),
                cursor=result.cursor_after,
            )
            finish([])
            return result
        exists = target.table_exists()
        current = None
        if previous is not None and previous.table == target.table and exists:
            current = previous.columns
        elif exists:
            raise SchemaViolation(
                f"The table {target.label} already exists and was not created by "
                f"importhub for this project; give the project another table name."
            )
        if not result.columns:
            # A source that gave no rows, nor fields to know them by.
            result.rows_deleted = _empty_source(
                target, current, replace=replace, limit=deletion_limit
            )
            result.cursor_after = result.cursor_before
            if current is not None:
                target.state_finish(
                    columns=current,
                    counts=result.counts(),
                    committed_at=timezone.now().isoformat(),
                    cursor=result.cursor_after,
                )
            finish([])
            return result
        plan = schema_plan(
            current=current,
            fields=result.columns,
            field_types=result.types,
            declared=project.column_types,
            key_fields=list(project.key_fields or []),
            policy=project.schema_policy,
        )
        merge = TableMerge(
            stage=stage,
            plan=plan,
            markers=list(project.null_markers or []),
            run_id=run_id,
        )
        discarded = _discard_new_fields(merge, plan, result)
        if not merge.postgres or any(c.discard for c in plan.staged):
            # SQLite casts anything: check every value first; so does a
            # project that discards values, to count them.
            discarded += _resolve(merge, plan, merge.analyze(), result)
        # A new PostgreSQL table builds its key after the rows: that build
        # finds duplicates, so the grouping that removes them runs only then.
        deduplicate = not (merge.postgres and plan.creates)
        for _round in range(REPLANS):
            try:
                with target.atomic():
                    duplicates = merge.deduplicate() if deduplicate else 0
                    merge.schema_apply()
                    inserted, updated, deleted = merge.run(
                        replace=replace, deletion_limit=deletion_limit
                    )
                break
            except IntegrityError:
                if deduplicate:
                    raise
                deduplicate = True
            except DataError as exc:
                misfits = merge.analyze()
                if not misfits:
                    raise SchemaViolation(
                        f"A value does not fit its column's type: {exc}".strip()
                    ) from None
                discarded += _resolve(merge, plan, misfits, result)
        else:
            raise SchemaViolation("The source's values kept not fitting the table.")
        result.duplicates += duplicates
        result.rows_inserted, result.rows_updated = inserted, updated
        result.rows_deleted = deleted
        staged = result.rows_read - result.rows_rejected - result.duplicates
        result.rows_unchanged = staged - inserted - updated
        changes = plan.changes(target.label)
        if discarded:
            changes.append({"change": "discarded_values", "count": discarded})
        result.cursor_after = _cursor_next(project, merge, plan, result)
        target.state_finish(
            columns=[c.as_dict() for c in plan.columns],
            counts=result.counts(),
            committed_at=timezone.now().isoformat(),
            cursor=result.cursor_after,
        )
        project.table_columns = [c.as_dict() for c in plan.columns]
        Project.objects.filter(pk=project.pk).update(
            table_columns=project.table_columns
        )
        finish(changes)
    return result


def _cursor_next(project, merge: TableMerge, plan: Plan, result: LoadResult):
    """The cursor to commit: the largest staged value of its field, never
    below the one stored; None for a project without a cursor.

    Raises:
        SchemaViolation: the new value cannot be compared with the stored.
    """
    config = cursor_config(project.source)
    if config is None:
        return None
    stored = result.cursor_before or {}
    kept = {k: v for k, v in stored.items() if k != "fingerprint"}
    if result.fingerprint:
        kept["fingerprint"] = result.fingerprint
    if not config.field:
        return kept or None
    column = next(c for c in plan.columns if c.name == config.field)
    found = cursor_json(merge.largest(column))
    old = stored.get("value") if stored.get("field") == config.field else None
    if found is None:
        found = old  # nothing new: the cursor stays
    elif old is not None:
        order = cursor_compare(found, old)
        if order is None:
            raise SchemaViolation(
                f"The cursor's new value {found!r} of `{config.field}` cannot be "
                f"compared with the stored {old!r}; run a full refresh to start "
                f"the cursor anew."
            )
        if order < 0:
            result.warnings.append(
                f"The largest `{config.field}` read ({found!r}) is below the "
                f"stored cursor ({old!r}); the cursor stays where it was."
            )
            found = old
    if found is None:
        return kept or None
    return {**kept, "field": config.field, "value": found, "type": column.type}


def _empty_source(target, current, *, replace: bool, limit: DeletionLimit) -> int:
    """An empty source: nothing to write; a replace empties the table, once
    the deletion limit lets it. Returns how many rows went."""
    if current is None or not replace:
        return 0
    table = target.qualified(target.table)
    with target.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - quoted
        existing = cursor.fetchone()[0]
        limit.check(deleting=existing, current=existing, staged_empty=True)
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - quoted
        return cursor.rowcount


def _discard_new_fields(merge: TableMerge, plan: Plan, result: LoadResult) -> int:
    """Under ``discard_row``, drop the rows that hold a value of a new field."""
    if not plan.discarded_fields or plan.policy != "discard_row":
        return 0
    columns = [
        Column(name, "text", stage=column) for name, column in plan.discarded_fields
    ]
    count, rows = merge.discard_field_rows(columns, samples=REJECTED_SAMPLES)
    _rejected(
        result,
        count,
        rows,
        "holds the new field(s) "
        + ", ".join(f"`{name}`" for name, _ in plan.discarded_fields),
    )
    return 0


def _resolve(merge: TableMerge, plan: Plan, misfits: list[Misfit], result) -> int:
    """Apply the policy to values that do not fit; the values discarded.

    Raises:
        SchemaViolation: the policy (or a declared type) refuses them.
    """
    policy = plan.policy
    evolving = policy == "evolve" or (policy == "freeze" and plan.creates)
    refuse = [
        m
        for m in misfits
        if m.column.declared and policy not in ("discard_row", "discard_value")
    ]
    if refuse:
        raise SchemaViolation(_misfit_text(refuse, "its declared type"))
    if policy == "freeze" and not plan.creates:
        for misfit in misfits:
            plan.retype(misfit.column, misfit.fits)
        violations_raise(plan, rows={m.column.name: (m.row, m.value) for m in misfits})
    if evolving:
        for misfit in misfits:
            plan.retype(misfit.column, misfit.fits)
        return 0
    values = [m for m in misfits if m.column.discard]
    rows = [m for m in misfits if not m.column.discard]
    if rows:
        count, seqs = merge.discard_rows(rows, samples=REJECTED_SAMPLES)
        _rejected(result, count, seqs, _misfit_text(rows, "its column's type"))
    return sum(m.count for m in values)


def _rejected(result: LoadResult, count: int, rows: list[int], reason: str) -> None:
    result.rejected_add(rows, reason, count=count)
    result.rejected_at_load += count


def _misfit_text(misfits: list[Misfit], what: str) -> str:
    parts = [
        f"`{m.column.name}` ({m.column.type}): {m.count:,} value(s) do not fit, "
        f"the first in row {m.row}: {m.value!r}"
        for m in misfits
    ]
    return f"Values do not fit {what}: " + "; ".join(parts) + "."
