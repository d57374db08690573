"""What the load benchmarks share: the generated file, projects, a worker.

The file has BENCH_ROWS rows (1,000,000 by default) of mixed types: text,
integers, decimals, dates and nulls, with a natural key of three columns.
Its variant with 1% of the rows changed (``changed_every=100``) keeps every
other row byte for byte.
"""

import csv
import datetime
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import common

ROOT = common.ROOT
WORK = ROOT / "var" / "bench"
DB_NAME = os.environ.get("BENCH_DB", "importhub_bench")
PG = common.PG
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
SMALL_ROWS = max(ROWS // 10, 1)
HEADER = ["region", "customer", "seq", "name", "amount", "quantity", "created", "note"]
KEY_FIELDS = ["region", "customer", "seq"]
RECORDS, TABLE = "records", "table"


def generate(path: Path, rows: int, *, changed_every: int = 0) -> Path:
    """Write the file once (it is kept in var/bench between runs).

    With ``changed_every=n``, every n-th row (0, n, 2n, ...) has another
    name and amount; the random draws, and so every other row, stay the same.
    """
    if path.exists():
        return path
    rnd = random.Random(42)
    base = datetime.date(2000, 1, 1)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            name = f"name {rnd.randrange(10**6)}"
            amount = rnd.uniform(-1e4, 1e5)
            if changed_every and i % changed_every == 0:
                name, amount = f"{name} (changed)", amount + 1
            writer.writerow(
                [
                    f"R{i % 50:02d}",
                    f"C{i // 50:07d}",
                    i % 7,
                    name,
                    f"{amount:.2f}",
                    rnd.randrange(1000) if i % 10 else "",
                    (base + datetime.timedelta(days=rnd.randrange(9000))).isoformat(),
                    "" if i % 3 else f"note with, comma {i}",
                ]
            )
    tmp.rename(path)
    return path


def changed_rows(rows: int, every: int) -> int:
    """How many rows ``generate(changed_every=every)`` changes."""
    return len(range(0, rows, every))


def setup_django() -> None:
    common.setup_django(DB_NAME, label="bench")


def fresh_project(name: str, path: Path, *, layout: str):
    """A project reading ``path`` in ``layout``, with no data and no runs."""
    from connectors.models import Connector
    from imports.models import Project, Record

    connector, _ = Connector.objects.get_or_create(
        name="bench", defaults={"kind": "csv", "max_concurrent_imports": 4}
    )
    project, _ = Project.objects.update_or_create(
        name=name,
        defaults={
            "connector": connector,
            "source": {"path": str(path)},
            "key_fields": KEY_FIELDS,
            "layout": layout,
        },
    )
    Record.objects.filter(project=project).delete()
    project.runs.all().delete()
    if layout == TABLE:
        table_reset(project)
    return project


def table_reset(project) -> None:
    """Drop a typed project's table and forget its state row."""
    from django.db import connection

    from imports.loading import Target
    from imports.loading.destination import STATE_TABLE

    target = Target(project)
    target.ensure()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {target.qualified(target.table)}")
        cursor.execute(
            f"DELETE FROM {target.qualified(STATE_TABLE)} WHERE project_id = %s",
            [project.pk],
        )


def maintain(*tables: str) -> None:
    """VACUUM ``tables`` (a re-import reads them) and CHECKPOINT.

    Between the measurements, so that none pays for the writes of the one
    before it.
    """
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM {table}")
        conn.execute("CHECKPOINT")


class Worker:
    """A real worker, solo pool: the import runs in the process measured.

    It first runs a one-row import in ``layout``, as a long-lived
    production worker has: a cold worker's first task pays about half a
    second of Celery start-up, which is not import throughput.
    """

    def __init__(self, *, layout: str):
        WORK.mkdir(parents=True, exist_ok=True)
        self.log = (WORK / "worker.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "-l", "INFO", "-P", "solo", "-Q", os.environ["IMPORTHUB_TASK_QUEUE"],
                "-n", f"bench-{uuid.uuid4().hex[:6]}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT, env=dict(os.environ), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b" ready." not in (WORK / "worker.log").read_bytes()[-20000:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench worker did not start; see worker.log")
            time.sleep(0.1)
        warm = WORK / "warm-up.csv"
        warm.write_text(",".join(HEADER) + "\n" + ",".join(["x"] * len(HEADER)) + "\n")
        importhub_run(fresh_project(f"bench-warm-up-{layout}", warm, layout=layout))

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def importhub_run(project) -> tuple[float, object]:
    """Request an import and wait for it: ``(seconds, run)``."""
    from imports.models import ImportRun
    from imports.services.guard import import_run_request

    start = time.perf_counter()
    run = import_run_request(project=project, requested_by="bench", trigger="command")
    while True:
        run.refresh_from_db()
        if run.status in ImportRun.FINAL_STATUSES:
            break
        # Fine enough for a sub-second import (an incremental one).
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    if run.status != ImportRun.Status.SUCCEEDED:
        raise RuntimeError(f"import failed: {run.error_class}: {run.error_message}")
    return elapsed, run
