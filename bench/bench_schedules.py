"""10,000 scheduled projects all due in the same minute, one real beat.

Creates a fresh database (``importhub_bench_sched``) with BENCH_PROJECTS
projects (10,000 by default), each with a crontab schedule for one and the
same coming minute, starts one real ``celery beat`` process with the
project's scheduler, and measures the time from the start of that minute to
the creation of the last run row. Every dispatch goes through the guard,
in beat's batches: the admission scripts, the run rows, and a publish to a
queue no worker consumes.
The goal: all dispatched within 10 s of the minute's start (issue 14; it
was 59 s with the guard run one project at a time on eight threads).
"""

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import common

ROOT = common.ROOT
WORK = ROOT / "var" / "bench"
DB_NAME = os.environ.get("BENCH_SCHED_DB", "importhub_bench_sched")
PG = common.PG
PROJECTS = int(os.environ.get("BENCH_PROJECTS", "10000"))
GOAL_SECONDS = 10.0
# The beat must have loaded every entry before the minute starts.
LEAD_SECONDS = 40


def setup_django() -> None:
    common.setup_django(DB_NAME, label="bench-sched")


def create_projects(minute: datetime.datetime) -> None:
    """The projects and their schedules, in bulk."""
    import json

    from django.conf import settings
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    from connectors.models import Connector
    from imports.models import Project
    from imports.services.schedules import SCHEDULED_TASK_NAME, project_schedule_name

    connector = Connector.objects.create(
        name="bench", kind="csv", max_concurrent_imports=100
    )
    Project.objects.bulk_create(
        [
            Project(
                name=f"bench-{i:05d}",
                connector=connector,
                # Inside the CSV roots (bench/common.py); never read: the
                # benchmark measures dispatch, no worker consumes.
                source={"path": str(WORK / "never-read.csv")},
                key_fields=["id"],
            )
            for i in range(PROJECTS)
        ],
        batch_size=2000,
    )
    crontab = CrontabSchedule.objects.create(
        minute=str(minute.minute),
        hour=str(minute.hour),
        day_of_month="*",
        month_of_year="*",
        day_of_week="*",
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.bulk_create(
        [
            PeriodicTask(
                name=project_schedule_name(pk),
                task=SCHEDULED_TASK_NAME,
                kwargs=json.dumps({"project_id": pk}),
                crontab=crontab,
            )
            for pk in Project.objects.order_by("pk").values_list("pk", flat=True)
        ],
        batch_size=2000,
    )
    PeriodicTasks.update_changed()


def start_beat(log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "-l",
            "WARNING",
            "--max-interval",
            "5",
            "--pidfile",
            str(log_path.with_suffix(".pid")),
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def cleanup() -> None:
    import redis
    from django.conf import settings
    from django.db import connections

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(settings.IMPORTHUB_TASK_QUEUE)
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(
        client.scan_iter(match=f"{settings.IMPORTHUB_REDIS_PREFIX}*", count=5000)
    )
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start : start + 5000])
    connections.close_all()
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    setup_django()
    from django.db.models import Max
    from django.utils import timezone

    from imports.models import ImportRun

    now = timezone.now()
    minute = (now + datetime.timedelta(seconds=LEAD_SECONDS + 60)).replace(
        second=0, microsecond=0
    )
    t0 = time.monotonic()
    create_projects(minute)
    print(
        f"\n== schedules: {PROJECTS:,} projects due at {minute:%H:%M} "
        f"(created in {time.monotonic() - t0:.1f} s) =="
    )
    log_path = WORK / "beat-schedules.log"
    beat = start_beat(log_path)
    failed = 0
    try:
        start = minute.timestamp()
        deadline = start + 90
        count = 0
        while time.time() < deadline:
            count = ImportRun.objects.count()
            if count >= PROJECTS:
                break
            if beat.poll() is not None:
                print(log_path.read_text(errors="replace")[-3000:])
                break
            time.sleep(0.5)
        last = ImportRun.objects.aggregate(last=Max("created_at"))["last"]
        first = ImportRun.objects.order_by("created_at").first()
        if count >= PROJECTS and last is not None:
            took = (last - minute).total_seconds()
            lag = (first.created_at - minute).total_seconds()
            ok = took < GOAL_SECONDS
            print(
                f"{count:,} runs dispatched {took:.1f} s after the minute started "
                f"(first after {lag:.2f} s; {count / max(took - lag, 1e-9):,.0f} "
                f"dispatches/s): {'PASS' if ok else 'FAIL'} (goal < {GOAL_SECONDS:g} s)"
            )
            failed += not ok
        else:
            print(f"only {count:,} of {PROJECTS:,} runs within 90 s: FAIL")
            failed += 1
        from django.db.models import Count

        totals = ImportRun.objects.aggregate(
            runs=Count("id"), projects=Count("project", distinct=True)
        )
        if totals["runs"] != totals["projects"]:
            print(f"{totals['runs'] - totals['projects']} projects ran twice: FAIL")
            failed += 1
    finally:
        beat.terminate()
        try:
            beat.wait(timeout=30)
        except subprocess.TimeoutExpired:
            beat.kill()
        cleanup()
    return failed


if __name__ == "__main__":
    sys.exit(main())
