"""What the benchmarks share: a fresh database of their own, and Django."""

import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def setup_django(db_name: str, *, label: str = "bench") -> None:
    """Create ``db_name`` anew, point Django at it, and migrate.

    The queue and Redis prefix are unique per run, so a benchmark never
    consumes or sees another's messages and keys.
    """
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    os.environ["DATABASE_URL"] = f"{PG}/{db_name}"
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
    os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])
    os.environ["IMPORTHUB_TASK_QUEUE"] = f"{label}-{uuid.uuid4().hex[:8]}"
    os.environ["IMPORTHUB_REDIS_PREFIX"] = f"{label}-{uuid.uuid4().hex[:8]}:"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The benchmarks' files live in var/bench: a folder CSV paths may name.
    os.environ.setdefault("IMPORTHUB_CSV_ROOTS", str(ROOT / "var" / "bench"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
