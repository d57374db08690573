"""The guard against its peers, in one process, one Redis, one broker.

Measured in the same run, interleaved over ROUNDS rounds (the best of each
is kept, as these machines are noisy), with no worker consuming:

* bare Celery ``apply_async`` of a no-op task: the floor of any dispatch;
* celery-once (a benchmark-only dependency): an accepted dispatch (its
  lock, then the publish) and a duplicate refused (its lock, then a PTTL);
* importhub: an accepted request (a project not importing: the lock and a
  slot, the run and its first event in the database, the publish), a
  refused one (a busy project), and a bulk request (pages of BULK_PAGE new
  projects through one guard call), per project.

Goals (issue 14): refusal >= 1.5x celery-once's duplicate refusal; a single
accepted request >= 0.5x celery-once's accepted dispatch (moonshot 0.8x),
which writes no database row; bulk >= 3x celery-once's accepted dispatch.
"""

import os
import sys
import time

from bench import common

DB_NAME = os.environ.get("BENCH_GUARD_DB", "importhub_bench_guard")
ROUNDS = int(os.environ.get("BENCH_GUARD_ROUNDS", "3"))
SINGLE = int(os.environ.get("BENCH_GUARD_SINGLE", "1000"))
REFUSED = int(os.environ.get("BENCH_GUARD_REFUSED", "2000"))
BULK = int(os.environ.get("BENCH_GUARD_BULK", "2000"))
BULK_PAGE = 500

GOAL_REFUSED = 1.5
GOAL_ACCEPTED = 0.5
MOONSHOT_ACCEPTED = 0.8
GOAL_BULK = 3.0


def make_projects(count: int) -> list:
    from connectors.models import Connector
    from imports.models import Project

    connector = Connector.objects.filter(name="bench").first()
    if connector is None:
        connector = Connector.objects.create(
            name="bench", kind="csv", max_concurrent_imports=100_000
        )
    start = Project.objects.count()
    Project.objects.bulk_create(
        [
            Project(
                name=f"bench-{start + i:06d}",
                connector=connector,
                # Inside the CSV roots; never read: no worker consumes.
                source={"path": str(common.ROOT / "var" / "bench" / "x.csv")},
                key_fields=["id"],
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    return list(
        Project.objects.select_related("connector")
        .filter(name__gte=f"bench-{start:06d}")
        .order_by("pk")[:count]
    )


def peers():
    """The no-op task and celery-once's task, on the project's Celery app."""
    from celery_once import QueueOnce
    from django.conf import settings

    from config.celery import app

    app.conf.ONCE = {
        "backend": "celery_once.backends.Redis",
        "settings": {"url": settings.REDIS_URL, "default_timeout": 3600},
    }

    @app.task(name="bench.noop", ignore_result=True)
    def noop(i):
        return i

    @app.task(name="bench.once", base=QueueOnce, ignore_result=True)
    def once(i):
        return i

    return noop, once


def rate(count: int, work) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def main() -> int:
    (common.ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    common.setup_django(DB_NAME, label="bench-guard")
    from celery_once import AlreadyQueued
    from django.conf import settings

    from imports.exceptions import ProjectBusy
    from imports.services.guard import (
        RunRequest,
        import_run_request,
        import_runs_request,
    )

    queue = settings.IMPORTHUB_TASK_QUEUE
    noop, once = peers()
    busy = make_projects(1)[0]
    import_run_request(project=busy, requested_by="bench", trigger="command")
    # Warm: connections, scripts, reserved ids. celery-once's duplicate is
    # this run's own (its key outlives the run by its hour-long timeout).
    duplicate = -time.time_ns()
    noop.apply_async(args=(0,), queue=queue)
    once.apply_async(args=(duplicate,), queue=queue)

    best: dict[str, float] = {}
    offset = time.time_ns()  # celery-once keys of earlier runs live on
    for _round in range(ROUNDS):
        singles, bulk = make_projects(SINGLE), make_projects(BULK)

        def bare():
            for i in range(SINGLE):
                noop.apply_async(args=(i,), queue=queue)

        def once_accepted(base=offset):
            for i in range(SINGLE):
                once.apply_async(args=(base + i,), queue=queue)

        def once_refused():
            for _ in range(REFUSED):
                try:
                    once.apply_async(args=(duplicate,), queue=queue)
                except AlreadyQueued:
                    pass
                else:
                    raise AssertionError("celery-once accepted a duplicate")

        def accepted(projects=singles):
            for project in projects:
                import_run_request(project=project, requested_by="b", trigger="api")

        def refused():
            for _ in range(REFUSED):
                try:
                    import_run_request(project=busy, requested_by="b", trigger="api")
                except ProjectBusy:
                    pass
                else:
                    raise AssertionError("the guard accepted a busy project")

        def bulk_accepted(projects=bulk):
            for start in range(0, len(projects), BULK_PAGE):
                outcomes = import_runs_request(
                    requests=[RunRequest(p) for p in projects[start:][:BULK_PAGE]],
                    requested_by="b",
                    trigger="api",
                )
                assert all(o.run is not None for o in outcomes), outcomes[:3]

        offset += SINGLE
        for name, count, work in (
            ("bare", SINGLE, bare),
            ("once_accepted", SINGLE, once_accepted),
            ("once_refused", REFUSED, once_refused),
            ("accepted", SINGLE, accepted),
            ("refused", REFUSED, refused),
            ("bulk", BULK, bulk_accepted),
        ):
            best[name] = max(best.get(name, 0.0), rate(count, work))

    print(f"\n== guard: requests per second, best of {ROUNDS} interleaved rounds ==")
    for name, label in (
        ("bare", "bare Celery apply_async (no lock)"),
        ("once_accepted", "celery-once, accepted"),
        ("once_refused", "celery-once, duplicate refused"),
        ("accepted", "importhub, accepted (lock + slot + run row + publish)"),
        ("refused", "importhub, refused (project busy)"),
        ("bulk", f"importhub, bulk accepted (pages of {BULK_PAGE}), per project"),
    ):
        print(f"{label:<62} {best[name]:>9,.0f}/s")
    failed = 0
    for label, ratio, goal, moonshot in (
        ("refused vs celery-once duplicate", best["refused"] / best["once_refused"],
         GOAL_REFUSED, None),
        ("accepted vs celery-once accepted", best["accepted"] / best["once_accepted"],
         GOAL_ACCEPTED, MOONSHOT_ACCEPTED),
        ("bulk vs celery-once accepted", best["bulk"] / best["once_accepted"],
         GOAL_BULK, None),
    ):  # fmt: skip
        ok = ratio >= goal
        failed += not ok
        extra = ""
        if moonshot is not None:
            met = "met" if ratio >= moonshot else "not met"
            extra = f"; moonshot {moonshot:g}x {met}"
        print(
            f"{label:<40} {ratio:5.2f}x  {'PASS' if ok else 'FAIL'} "
            f"(goal >= {goal:g}x{extra})"
        )
    cleanup(queue)
    return 1 if failed else 0


def cleanup(queue: str) -> None:
    import psycopg
    import redis
    from django.conf import settings
    from django.db import connections

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in (f"{settings.IMPORTHUB_REDIS_PREFIX}*", "qo_bench.once*"):
        keys = list(client.scan_iter(match=pattern, count=5000))
        for start in range(0, len(keys), 5000):
            client.delete(*keys[start : start + 5000])
    connections.close_all()
    with psycopg.connect(f"{common.PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
