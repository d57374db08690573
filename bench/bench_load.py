"""Loading a large CSV: the COPY limit, a hand-written peer, and importhub.

All three load the same generated file (BENCH_ROWS rows, 1,000,000 by
default: text, numbers, dates and nulls, a natural key of three columns)
into one PostgreSQL database of their own (``importhub_bench``):

1. the limit: ``psql \\copy`` into a typed table;
2. the hand-written peer: psycopg COPY of the file into a staging table, then
   one ``INSERT ... ON CONFLICT`` into the same records table importhub uses,
   with the key, the JSON and the checksum built in SQL;
3. importhub end to end: ``import_run_request`` -> a real Celery worker ->
   succeeded, then an unchanged re-import of the same file.

Then the same measurements in the typed layout (``load_typed``): importhub
landing the file in a typed table of its own against ``psql \\copy`` into
the same typed table, first import, unchanged and 1%-changed re-imports,
and the typed layout against the records layout above. Every records
project here says ``layout="records"``.

In each layout it also reads the worker's peak RSS (VmHWM) after a
100,000-row import and after the full import, each in a fresh worker
process. Each fresh worker first runs a one-row import, as a long-lived
production worker has: a cold worker's first task pays about half a second
of Celery start-up, which is not import throughput. The database is created
anew on every run.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import load_typed
from bench.load_common import (
    DB_NAME,
    HEADER,
    KEY_FIELDS,
    PG,
    RECORDS,
    ROWS,
    SMALL_ROWS,
    WORK,
    Worker,
    fresh_project,
    generate,
    importhub_run,
    maintain,
    setup_django,
)


def sql_source(path: Path) -> str:
    """A second database holding the CSV's rows in a typed table."""
    import psycopg

    name = f"{DB_NAME}_src"
    url = f"{PG}/{name}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE src (region text, customer text, seq int, name text, "
            "amount numeric, quantity int, created date, note text)"
        )
        copy_in = "COPY src FROM STDIN (FORMAT csv, HEADER true)"
        with conn.cursor() as cur, path.open("rb") as f, cur.copy(copy_in) as cp:
            while chunk := f.read(1 << 20):
                cp.write(chunk)
        conn.execute("VACUUM ANALYZE src")
    return url


def sql_project(name: str, url: str):
    from connectors.models import Connector
    from imports.models import Project, Record

    connector, _ = Connector.objects.update_or_create(
        name="bench-sql",
        # The benchmark reads a scratch database of its own as the server's
        # owner; a deployment gives its connectors a read-only role instead.
        defaults={
            "kind": "sql",
            "config": {"url": url, "allow_privileged_role": True},
            "max_concurrent_imports": 4,
        },
    )
    project, _ = Project.objects.update_or_create(
        name=name,
        defaults={
            "connector": connector,
            "source": {"query": "SELECT * FROM src"},
            "key_fields": KEY_FIELDS,
            "layout": RECORDS,
        },
    )
    Record.objects.filter(project=project).delete()
    project.runs.all().delete()
    return project


def bench_sql_pipe(source_url: str, project) -> float:
    """COPY out of the source piped into COPY in, then one upsert."""
    import psycopg

    copy_out = (
        "COPY (SELECT concat_ws(E'\\x1f', region, customer, seq), j::text, "
        "md5(j::text) FROM (SELECT *, to_jsonb(src) AS j FROM src) s) TO STDOUT"
    )
    start = time.perf_counter()
    with (
        psycopg.connect(source_url) as src,
        psycopg.connect(os.environ["DATABASE_URL"]) as dst,
    ):
        with dst.transaction():
            dst.execute(
                "CREATE TEMP TABLE staging (key text, data jsonb, checksum text) "
                "ON COMMIT DROP"
            )
            with (
                src.cursor().copy(copy_out) as out,
                dst.cursor().copy("COPY staging FROM STDIN") as into,
            ):
                for data in out:
                    into.write(data)
            dst.execute(
                "INSERT INTO imports_record (project_id, key, data, checksum) "
                "SELECT %s, key, data, checksum FROM staging "
                "ON CONFLICT (project_id, key) DO UPDATE SET data = excluded.data, "
                "checksum = excluded.checksum "
                "WHERE imports_record.checksum <> excluded.checksum",
                [project.pk],
            )
    return time.perf_counter() - start


def bench_psql_copy(path: Path) -> float:
    import psycopg

    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_typed")
        conn.execute(
            "CREATE TABLE bench_typed (region text, customer text, seq int, "
            "name text, amount numeric, quantity int, created date, note text)"
        )
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql is not on PATH")
    start = time.perf_counter()
    subprocess.run(
        [psql, url, "-q", "-c", f"\\copy bench_typed FROM '{path}' CSV HEADER"],
        check=True,
    )
    elapsed = time.perf_counter() - start
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_typed")
    return elapsed


def bench_hand_written(path: Path, project) -> float:
    """psycopg COPY into staging, then one INSERT ... ON CONFLICT."""
    import psycopg

    pairs = ", ".join(f"'{c}', coalesce({c}, '')" for c in HEADER)
    start = time.perf_counter()
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        with conn.transaction():
            conn.execute(
                "CREATE TEMP TABLE staging (region text, customer text, seq text, "
                "name text, amount text, quantity text, created text, note text) "
                "ON COMMIT DROP"
            )
            copy_in = "COPY staging FROM STDIN (FORMAT csv, HEADER true)"
            with conn.cursor() as cur, path.open("rb") as f, cur.copy(copy_in) as cp:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
            conn.execute(
                "INSERT INTO imports_record (project_id, key, data, checksum) "
                "SELECT %s, k, d, md5(d::text) FROM ("
                f"  SELECT concat_ws(E'\\x1f', region, customer, seq) AS k, "
                f"  jsonb_build_object({pairs}) AS d FROM staging) s "
                "ON CONFLICT (project_id, key) DO UPDATE SET data = excluded.data, "
                "checksum = excluded.checksum "
                "WHERE imports_record.checksum <> excluded.checksum",
                [project.pk],
            )
    return time.perf_counter() - start


def main() -> int:
    """Run the benchmark; return how many goals failed."""
    WORK.mkdir(parents=True, exist_ok=True)
    setup_django()
    big = generate(WORK / f"load-{ROWS}.csv", ROWS)
    small = generate(WORK / f"load-{SMALL_ROWS}.csv", SMALL_ROWS)
    print(f"\n== load: {ROWS:,} rows, {big.stat().st_size / 1e6:.0f} MB CSV ==")

    peer_project = fresh_project("bench-hand-written", big, layout=RECORDS)
    our_project = fresh_project("bench-importhub", big, layout=RECORDS)
    small_project = fresh_project("bench-importhub-small", small, layout=RECORDS)
    maintain("imports_record")

    t_copy = bench_psql_copy(big)
    t_peer = bench_hand_written(big, peer_project)
    maintain("imports_record")

    worker = Worker(layout=RECORDS)
    try:
        importhub_run(small_project)
        rss_small = worker.peak_rss_mb()
    finally:
        worker.stop()
    worker = Worker(layout=RECORDS)
    try:
        t_first, first = importhub_run(our_project)
        rss_big = worker.peak_rss_mb()
        maintain("imports_record")
        t_again, again = importhub_run(our_project)
    finally:
        worker.stop()
    source_url = sql_source(big)
    sql_peer = sql_project("bench-sql-pipe", source_url)
    sql_ours = sql_project("bench-sql-importhub", source_url)
    maintain("imports_record")
    t_sql_peer = bench_sql_pipe(source_url, sql_peer)
    maintain("imports_record")
    worker = Worker(layout=RECORDS)
    try:
        t_sql, sql_run = importhub_run(sql_ours)
    finally:
        worker.stop()
    assert sql_run.rows_inserted == ROWS, sql_run.rows_inserted
    assert first.rows_inserted == ROWS, first.rows_inserted
    assert again.rows_unchanged == ROWS and again.rows_updated == 0

    def rate(seconds: float) -> str:
        return f"{ROWS / seconds:>12,.0f} rows/s  ({seconds:6.2f} s)"

    print(f"  psql \\copy (limit)            {rate(t_copy)}")
    print(f"  hand-written COPY + upsert     {rate(t_peer)}")
    print(f"  importhub first import         {rate(t_first)}")
    print(f"  importhub unchanged re-import  {rate(t_again)}")
    print(f"  SQL: COPY-out/COPY-in pipe     {rate(t_sql_peer)}")
    print(f"  SQL: importhub first import    {rate(t_sql)}")
    ratio_sql = t_sql_peer / t_sql
    ratio_peer = t_peer / t_first
    ratio_again = t_first / t_again
    ratio_rss = rss_big / rss_small
    print(f"  importhub vs hand-written      {ratio_peer:.2f}x   (goal >= 1.0)")
    print(f"  re-import vs first import      {ratio_again:.2f}x   (goal >= 1.5)")
    print(f"  importhub vs psql \\copy        {t_copy / t_first:.2f}x   (the limit)")
    print(f"  SQL: importhub vs the pipe     {ratio_sql:.2f}x   (goal >= 1.0)")
    print(
        f"  worker peak RSS {rss_small:.0f} MB at {SMALL_ROWS:,} rows, "
        f"{rss_big:.0f} MB at {ROWS:,}: {ratio_rss:.2f}x   (goal <= 1.2)"
    )
    goals = [
        ("first import >= 1.0x hand-written", ratio_peer >= 1.0),
        ("unchanged re-import >= 1.5x first", ratio_again >= 1.5),
        ("peak RSS at full size <= 1.2x at a tenth", ratio_rss <= 1.2),
        ("SQL source >= 1.0x a COPY pipe", ratio_sql >= 1.0),
    ]
    for label, ok in goals:
        print(f"  goal: {label:<42} {'PASS' if ok else 'FAIL'}")
    typed_failed = load_typed.main(
        big=big, small=small, limit=t_copy, records={"first": t_first, "again": t_again}
    )
    return sum(not ok for _, ok in goals) + typed_failed


if __name__ == "__main__":
    sys.exit(main())
