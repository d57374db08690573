"""Incremental imports and resume, measured end to end with a real worker.

Goals (issue 13):

1. A 1,000,000-row SQL source (BENCH_ROWS), 1% of its rows changed since the
   last run: the incremental run takes <= 0.05x the time of a full import of
   the same source (moonshot 0.02x). Both are ``import_run_request`` -> a
   real Celery worker -> succeeded; the full import is the project's first
   run, the incremental one reads ``WHERE updated > %(cursor)s`` (an index
   on ``updated``, as a source table that is read incrementally has).
2. A paged HTTP source (a local server, next-link pagination) whose last
   page fails once: the retry's requests are <= 1 page (it goes on from the
   checkpoint of the page before).

Each run's counts and the table's content are checked, so that a broken
import cannot look fast.
"""

import os
import sys

import psycopg

from bench import common, load_common

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
DB_NAME = os.environ.get("BENCH_INCREMENTAL_DB", "importhub_bench_incremental")
SOURCE_DB = f"{DB_NAME}_source"
PAGES = int(os.environ.get("BENCH_PAGES", "50"))
PER_PAGE = 100
QUERY = (
    "SELECT id, region, amount, note, updated FROM items "
    "WHERE %(cursor)s IS NULL OR updated > %(cursor)s"
)

failures: list[str] = []


def goal(text: str, ok: bool, figure: str) -> None:
    print(f"  goal: {text:<52} {figure}  {'PASS' if ok else 'FAIL'}")
    if not ok:
        failures.append(text)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"bench_incremental: {message}")


def source_create() -> str:
    with psycopg.connect(f"{common.PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SOURCE_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{SOURCE_DB}"')
    url = f"{common.PG}/{SOURCE_DB}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, region text, "
            "amount numeric, note text, updated bigint NOT NULL)"
        )
        conn.execute(
            "INSERT INTO items SELECT g, 'r' || (g % 7), (g % 1000) / 7.0, "
            "CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END, g "
            f"FROM generate_series(1, {ROWS}) g"
        )
        conn.execute("CREATE INDEX items_updated ON items (updated)")
        conn.execute("ANALYZE items")
    return url


def bench_sql(url: str) -> None:
    from connectors.models import Connector
    from imports.models import Project

    connector = Connector.objects.create(
        name="bench-sql",
        kind="sql",
        config={"url": url, "allow_privileged_role": True},
    )
    project = Project.objects.create(
        name="bench-incremental",
        connector=connector,
        layout="table",
        key_fields=["id"],
        source={"query": QUERY, "cursor": {"field": "updated"}},
    )
    full, run = load_common.importhub_run(project)
    check(run.rows_inserted == ROWS, f"full import inserted {run.rows_inserted}")
    changed = max(ROWS // 100, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE items SET amount = amount + 1, updated = updated + %s "
            "WHERE id %% 100 = 0",
            [ROWS],
        )
    incremental, run = load_common.importhub_run(project)
    check(
        (run.rows_read, run.rows_updated, run.rows_inserted) == (changed, changed, 0),
        f"incremental run read {run.rows_read}, updated {run.rows_updated}",
    )
    check(run.cursor_after["value"] == 2 * ROWS, f"cursor {run.cursor_after}")
    events = list(run.events.values_list("kind", "at"))
    start = events[0][1]
    print(
        "    phases: "
        + ", ".join(f"{k} {(at - start).total_seconds():.3f} s" for k, at in events)
    )
    ratio = incremental / full
    print(
        f"  SQL, {ROWS:,} rows: full import {full:.2f} s, "
        f"1% changed {incremental:.2f} s"
    )
    goal(
        "incremental (1% changed) <= 0.05x a full import",
        ratio <= 0.05,
        f"{ratio:.3f}x",
    )
    met = "MET" if ratio <= 0.02 else "not met"
    print(f"  moonshot: <= 0.02x{'':<34} {ratio:.3f}x  {met}")


def bench_http() -> None:
    from connectors.models import Connector
    from imports.models import Project
    from tests.connectors.servers import LocalHttpServer, Reply

    server = LocalHttpServer().start()
    failed = {PAGES}

    def page(request) -> Reply:
        number = int(request.query.get("page", 1))
        if number in failed:
            failed.discard(number)
            return Reply({"error": "busy"}, status=503)
        first = (number - 1) * PER_PAGE
        items = [{"id": i, "name": f"n{i}"} for i in range(first, first + PER_PAGE)]
        body = {"items": items}
        if number < PAGES:
            body["next"] = f"/items?page={number + 1}"
        return Reply(body)

    server.route("/items", page)
    try:
        connector = Connector.objects.create(
            name="bench-http",
            kind="http_json",
            config={"url": server.url("/"), "page_retries": 0},
        )
        project = Project.objects.create(
            name="bench-resume",
            connector=connector,
            layout="table",
            key_fields=["id"],
            max_retries=2,
            source={
                "path": "/items?page=1",
                "records_path": "items",
                "pagination": "next_link",
                "next_path": "next",
            },
        )
        _, run = load_common.importhub_run(project)
    finally:
        server.stop()
    check(run.rows_inserted == PAGES * PER_PAGE, f"inserted {run.rows_inserted}")
    check(run.attempt == 2, f"the run took {run.attempt} attempt(s)")
    requests = len(server.requests)
    retry = requests - PAGES  # the first attempt: pages 1..PAGES, the last failing
    print(f"  HTTP, {PAGES} pages, the last failing once: {requests} requests in all")
    goal("the retry's requests <= 1 page", retry <= 1, f"{retry} page(s)")


def main() -> int:
    os.environ.setdefault("IMPORTHUB_HTTP_ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("IMPORTHUB_RETRY_BASE_SECONDS", "0.2")
    sys.path.insert(0, str(common.ROOT))
    url = source_create()
    common.setup_django(DB_NAME, label="bench-incremental")
    print(f"== incremental: {ROWS:,}-row SQL source, a {PAGES}-page API ==")
    worker = load_common.Worker(layout="table")
    try:
        bench_sql(url)
        bench_http()
    finally:
        worker.stop()
        with psycopg.connect(f"{common.PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{SOURCE_DB}" WITH (FORCE)')
    if failures:
        print(f"goals failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
