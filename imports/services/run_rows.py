"""New runs written in one database round trip: ids reserved ahead, then the
runs and their first events in one statement.

The guard needs a run's id before it takes the project's lock, so that the
lock's value names the run (a refused request then says which run holds
the project without asking the database). Ids come from the run table's
own sequence, reserved a batch at a time per process: one query serves
many requests, and an id a refused request did not use is simply skipped
(a gap, as a rolled-back insert leaves one).

``runs_insert`` writes every accepted run of a request (one, or a whole
page of a selection) and its first events in one statement. Two checks the
database makes in that same statement keep the rule without a read ahead:

* the partial unique index ``one_active_run_per_project`` refuses a second
  active run (``ON CONFLICT DO NOTHING``: the row is left out and reported,
  and a surrounding transaction is not aborted);
* a run whose fencing token is not above the project's highest recorded
  one is left out too and reported with that floor: Redis lost or rolled
  back its counter (a flush, a failover to a lagging replica), and the
  guard re-takes the lock with the floor and writes the run again.

On another database (SQLite in the standalone demo) the same happens with
one ORM statement per step: it runs in-process, where round trips cost
little.
"""

import functools
import os
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Model

from imports.models import ImportRun, ImportRunEvent
from imports.models.runs import ACTIVE_RUN_STATUSES
from imports.services.selectors import project_fence_floor

#: Ids reserved per query; a process keeps at most this many unused.
ID_BATCH = 64


@dataclass(frozen=True, slots=True)
class Written:
    """What became of one run offered to ``runs_insert``."""

    inserted: bool
    #: The project's highest fencing token before this statement.
    floor: int


class _IdPool:
    """Run ids reserved from the table's sequence, for one process.

    A forked child (a prefork worker, a server's worker process) must not
    hand out its parent's reserved ids, so the pool empties itself in the
    child after a fork.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: deque[int] = deque()
        self._sql: str | None = None
        os.register_at_fork(after_in_child=self._ids.clear)

    def take(self, count: int) -> list[int]:
        with self._lock:
            if len(self._ids) < count:
                self._ids.extend(self._reserve(count - len(self._ids) + ID_BATCH))
            return [self._ids.popleft() for _ in range(count)]

    def top_up(self) -> None:
        """Refill an empty pool. Called by a request that wrote runs (it
        went to the database anyway), so that the next request, a refusal
        perhaps, finds an id ready: a refusal gives its id back, so a stream
        of refusals never drains the pool, and never reads the sequence."""
        with self._lock:
            if not self._ids:
                self._ids.extend(self._reserve(ID_BATCH))

    def give_back(self, ids: Sequence[int | None]) -> None:
        """Return ids a request reserved but did not write (refused), so
        that the next request takes them instead of a new query."""
        with self._lock:
            self._ids.extendleft(reversed([i for i in ids if i is not None]))
            while len(self._ids) > ID_BATCH * 4:
                self._ids.pop()

    def _reserve(self, count: int) -> list[int]:
        if self._sql is None:
            table = ImportRun._meta.db_table
            column = ImportRun._meta.pk.column
            self._sql = (
                f"SELECT nextval(pg_get_serial_sequence('{table}', '{column}')) "
                "FROM generate_series(1, %s)"
            )
        with connection.cursor() as cursor:
            cursor.execute(self._sql, [count])
            return [row[0] for row in cursor.fetchall()]


_pool = _IdPool()


@functools.cache
def ids_reserved() -> bool:
    """Whether runs get their ids before they are written (PostgreSQL).
    A process's database does not change: asked once."""
    return connection.vendor == "postgresql"


def run_ids_reserve(count: int) -> list[int | None]:
    """``count`` unused run ids, or Nones where the database assigns them."""
    if count <= 0:
        return []
    if not ids_reserved():
        return [None] * count
    return list(_pool.take(count))


def run_ids_give_back(ids: Sequence[int | None]) -> None:
    """Give back ids reserved for runs that were not written."""
    if ids_reserved():
        _pool.give_back(ids)


def runs_insert(
    runs: Sequence[ImportRun], events: Sequence[ImportRunEvent]
) -> list[Written]:
    """Write ``runs`` (with their ids set) and ``events`` (of those runs)
    in one statement; return one ``Written`` per run, in order.

    An event is written only with its run. A run left out was refused: by
    the one-active-run index (``floor`` below its token), or by the fence
    floor (``floor`` at or above its token).
    """
    if not runs:
        return []
    if connection.vendor != "postgresql":
        return _insert_one_by_one(runs, events)
    sql, params = _statement(runs, events)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {row[0]: Written(bool(row[2]), int(row[1])) for row in cursor}
    # This request went to the database anyway: it refills an empty id
    # reserve, so that a refusal never has to.
    _pool.top_up()
    for run in runs:
        run._state.adding = False
        run._state.db = connection.alias
    return [found[run.pk] for run in runs]


@dataclass(frozen=True, slots=True)
class _Table:
    """What the statement needs of one model, computed once per model."""

    columns: str
    #: ``unnest(%s::type[], ...)``: one array parameter per column, each
    #: cast to its column's type. The text does not grow with the rows, so
    #: a page of 500 runs is as cheap to send and parse as one.
    unnest: str
    #: Per column: (the field, its attname, whether pre_save computes it).
    fields: tuple


@functools.cache
def _table(model: type[Model], *, with_pk: bool) -> _Table:
    q = connection.ops.quote_name
    fields = [
        f
        for f in model._meta.concrete_fields
        if not f.generated and (with_pk or not f.primary_key)
    ]
    casts = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    return _Table(
        columns=", ".join(q(f.column) for f in fields),
        unnest=f"unnest({casts})",
        fields=tuple(
            (
                f,
                f.attname,
                # Only auto_now fields compute their value on save.
                any(getattr(f, name, False) for name in ("auto_now", "auto_now_add")),
            )
            for f in fields
        ),
    )


def _arrays(objs: Sequence[Model], table: _Table) -> list[list]:
    """One list per column: the values of ``objs``, prepared for the
    database."""
    # The wrapper itself, not the ``connection`` proxy: each value's
    # preparation asks it for its operations, and the proxy looks the
    # connection up on every attribute.
    db = connections[connection.alias]
    arrays = []
    for field, attname, computed in table.fields:
        prep = field.get_db_prep_save
        if computed:
            values = [prep(field.pre_save(obj, True), db) for obj in objs]
        else:
            values = [prep(getattr(obj, attname), db) for obj in objs]
        arrays.append(values)
    return arrays


@functools.cache
def _statement_sql(*, with_events: bool) -> str:
    """The statement's text (the same for any number of runs)."""
    q = connection.ops.quote_name
    run_table = q(ImportRun._meta.db_table)
    table = _table(ImportRun, with_pk=True)
    pk = q(ImportRun._meta.pk.column)
    project = q(ImportRun._meta.get_field("project").column)
    fence = q(ImportRun._meta.get_field("fencing_token").column)
    status = q(ImportRun._meta.get_field("status").column)
    active = ", ".join(f"'{s}'" for s in ACTIVE_RUN_STATUSES)
    sql = (
        f"WITH v AS (SELECT * FROM {table.unnest} AS v ({table.columns})), "
        f"f AS (SELECT v.{pk} AS id, (SELECT max(r.{fence}) FROM {run_table} r "
        f"WHERE r.{project} = v.{project}) AS floor FROM v), "
        f"ins AS (INSERT INTO {run_table} ({table.columns}) "
        f"SELECT v.* FROM v JOIN f ON f.id = v.{pk} "
        f"WHERE v.{fence} > coalesce(f.floor, 0) "
        f"ON CONFLICT ({project}) WHERE {status} IN ({active}) DO NOTHING "
        f"RETURNING {pk} AS id)"
    )
    if with_events:
        event_table = q(ImportRunEvent._meta.db_table)
        etable = _table(ImportRunEvent, with_pk=False)
        run_fk = q(ImportRunEvent._meta.get_field("run").column)
        sql += (
            f", ev AS (INSERT INTO {event_table} ({etable.columns}) "
            f"SELECT e.* FROM {etable.unnest} AS e ({etable.columns}) "
            f"WHERE e.{run_fk} IN (SELECT id FROM ins))"
        )
    return sql + (
        " SELECT f.id, coalesce(f.floor, 0), ins.id IS NOT NULL "
        "FROM f LEFT JOIN ins ON ins.id = f.id"
    )


def _statement(
    runs: Sequence[ImportRun], events: Sequence[ImportRunEvent]
) -> tuple[str, list]:
    params = _arrays(runs, _table(ImportRun, with_pk=True))
    if events:
        params += _arrays(events, _table(ImportRunEvent, with_pk=False))
    return _statement_sql(with_events=bool(events)), params


def _insert_one_by_one(
    runs: Sequence[ImportRun], events: Sequence[ImportRunEvent]
) -> list[Written]:
    written = []
    for run in runs:
        floor = project_fence_floor(project_id=run.project_id)
        if (run.fencing_token or 0) <= floor:
            written.append(Written(False, floor))
            continue
        try:
            with transaction.atomic():
                run.save(force_insert=True)
                own = [event for event in events if event.run is run]
                for event in own:
                    event.run = run  # the id is known now
                ImportRunEvent.objects.bulk_create(own)
        except IntegrityError:
            written.append(Written(False, floor))
            continue
        written.append(Written(True, floor))
    return written
