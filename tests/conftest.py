"""Shared fixtures: real Redis, PostgreSQL and Celery workers."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.brokers import DEFAULT_KINDS, Broker

# How a parallel run shares the tests out (make test).
pytest_plugins = ["tests.lanes"]

ROOT = Path(__file__).resolve().parent.parent
# A CSV file that does not exist, inside the CSV roots of the test settings.
MISSING_CSV = os.path.join(tempfile.gettempdir(), "importhub-missing", "test.csv")
ARTIFACTS = ROOT / "artifacts"
# Worker logs; a parallel run (pytest-xdist) gives each of its processes a
# folder of its own.
LOGS = ARTIFACTS / "logs" / os.environ.get("PYTEST_XDIST_WORKER", "")


def _delete_prefixed(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_prefix(request, settings):
    """A key prefix of this test's own, removed afterwards.

    End-to-end tests keep the session's prefix, which their worker shares.
    """
    from imports.locks import redis_client

    if request.node.get_closest_marker("e2e"):
        yield settings.IMPORTHUB_REDIS_PREFIX
        return
    prefix = f"{settings.IMPORTHUB_REDIS_PREFIX}{uuid.uuid4().hex[:8]}:"
    settings.IMPORTHUB_REDIS_PREFIX = prefix
    yield prefix
    _delete_prefixed(redis_client(), prefix)


def pytest_generate_tests(metafunc):
    """A test marked ``brokers`` runs once per broker it names (by default
    Redis and RabbitMQ); the parameter is per session, so the tests of one
    broker run together on one worker and queue set."""
    marker = metafunc.definition.get_closest_marker("brokers")
    if marker is not None and "broker" in metafunc.fixturenames:
        kinds = marker.args or DEFAULT_KINDS
        metafunc.parametrize("broker", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def broker(request):
    """The session's broker: Redis unless the test is parametrized
    (``@pytest.mark.brokers``). This process publishes there too; its
    queues are deleted at the end."""
    from django.conf import settings

    kind = getattr(request, "param", "redis")
    chosen = Broker.named(kind, redis_url=settings.CELERY_BROKER_URL)
    chosen.check()
    undo = chosen.use() if kind != "redis" else None
    chosen.queues.update([settings.IMPORTHUB_TASK_QUEUE])
    yield chosen
    chosen.delete(*chosen.queues, settings.IMPORTHUB_CONTROL_QUEUE)
    if undo is not None:
        undo()


@pytest.fixture
def task_queue(request, settings, broker):
    """A broker queue of this test's own; nothing consumes it.

    Its length is the number of tasks the test published.
    """
    if request.node.get_closest_marker("e2e"):
        yield settings.IMPORTHUB_TASK_QUEUE
        return
    queue = f"{settings.IMPORTHUB_TASK_QUEUE}-{uuid.uuid4().hex[:8]}"
    settings.IMPORTHUB_TASK_QUEUE = queue
    yield queue
    broker.delete(queue)


@pytest.fixture
def published(task_queue, broker):
    """How many messages the test published to its queue."""
    return lambda: broker.count(task_queue)


@pytest.fixture(autouse=True, scope="session")
def _flush_tries_again_after_a_deadlock():
    """A transactional test ends by emptying the tables in one TRUNCATE. A
    worker of the session may still be finishing a task then (its result
    row, a waiting run's promotion), and PostgreSQL may find the two
    deadlocked and cancel the TRUNCATE: it is tried again, the worker's
    transaction being over by then. Any other error is raised."""
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self):
        for attempt in range(1, 6):
            try:
                return original(self)
            except CommandError as exc:
                cause = getattr(exc.__cause__, "__cause__", None)
                if getattr(cause, "sqlstate", None) != "40P01" or attempt == 5:
                    raise
                time.sleep(0.2 * attempt)

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(autouse=True)
def _isolated_services(request):
    """Every Django test gets its own Redis key prefix and broker queue.

    The locking package's tests need no Django and bring their own.
    """
    if "locking" not in request.node.path.parts:
        request.getfixturevalue("redis_prefix")
        request.getfixturevalue("task_queue")
    yield


@pytest.fixture
def make_connector(db):
    from connectors.models import Connector

    def make(**fields) -> Connector:
        fields.setdefault("name", f"connector-{uuid.uuid4().hex[:8]}")
        fields.setdefault("kind", "csv")
        return Connector.objects.create(**fields)

    return make


@pytest.fixture
def make_project(db, make_connector):
    from imports.models import Project

    def make(**fields) -> Project:
        if "connector" not in fields:
            fields["connector"] = make_connector()
        fields.setdefault("name", f"project-{uuid.uuid4().hex[:8]}")
        fields.setdefault("key_fields", ["id"])
        # The JSON records layout unless a test asks for the typed table.
        fields.setdefault("layout", "records")
        # A valid source by default; tests that import data pass their own.
        # (Under the temp folder, one of the test settings' CSV roots.)
        fields.setdefault("source", {"path": MISSING_CSV})
        return Project.objects.create(**fields)

    return make


@pytest.fixture
def write_csv(tmp_path):
    """Write a CSV file from a header and rows; returns its path."""

    def write(rows, *, header=("id", "name", "amount"), name=None, **kwargs) -> Path:
        import csv

        path = tmp_path / (name or f"{uuid.uuid4().hex[:8]}.csv")
        with path.open("w", newline="", encoding=kwargs.get("encoding", "utf-8")) as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(header)
            writer.writerows(rows)
        return path

    return write


@pytest.fixture(scope="module")
def sql_admin_url():
    """A PostgreSQL database of the module's own, as its owner (a superuser).

    Dropped afterwards. Tests set up tables through ``sql_execute``; the
    connectors read it through ``sql_source_url``, as an unprivileged role.
    """
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    user = db["USER"] or "postgres"
    name = f"importhub_conn_src_{uuid.uuid4().hex[:10]}"
    admin_url = f"postgresql://{user}@{host}:{port}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def sql_source_url(sql_admin_url):
    """The module's source database as a role that may only read it.

    A login role of its own with CONNECT on the database, USAGE on the
    schema and SELECT on its tables (now and later, by default privileges):
    the grants README asks of a source role. Dropped afterwards.
    """
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    role = f"importhub_reader_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(sql_admin_url)
    database = parts.path.lstrip("/")
    owner = parts.username
    with psycopg.connect(sql_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        admin.execute(
            f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA public '
            f'GRANT SELECT ON TABLES TO "{role}"'
        )
    netloc = f"{role}@{parts.hostname}:{parts.port or 5432}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        with psycopg.connect(sql_admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s",
                [role],
            )
            admin.execute(f'DROP OWNED BY "{role}"')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def sql_execute(sql_admin_url):
    """Run statements on the source database as its owner, outside any connector."""
    import psycopg

    connection = psycopg.connect(sql_admin_url, autocommit=True)

    def execute(statement, params=None):
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else None

    yield execute
    connection.close()


class WorkerProcess:
    """A real ``celery worker`` process consuming the session's queue."""

    def __init__(
        self, *, env: dict, log_path: Path, concurrency: int = 2, pool: str = "prefork"
    ):
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.pool = pool
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        # The log may hold an earlier start's lines: only this start's count.
        start = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "INFO",
                "-Q",
                self.env["IMPORTHUB_TASK_QUEUE"],
                "-c",
                str(self.concurrency),
                "-P",
                self.pool,
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{self.log()}")
            if b" ready." in self.log_path.read_bytes()[start:]:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"celery worker did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL the worker and its children, as a crashed host would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker, broker):
    """The environment a worker needs to share this session's test database
    and broker."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = {**os.environ, **broker.env()}
    env["DATABASE_URL"] = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="session")
def celery_worker(worker_env, broker):
    """One real worker for the session's end-to-end tests."""
    worker = WorkerProcess(
        env=worker_env,
        log_path=LOGS / f"celery-worker-{broker.kind}.log",
    ).start()
    yield worker
    worker.stop()


def wait_for(predicate, *, timeout: float = 30, interval: float = 0.1, message=""):
    """Poll ``predicate`` until it returns a truthy value, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(message or f"condition not met within {timeout} s")
        time.sleep(interval)


def end_run(run, status, **fields):
    """End a run as its worker would: final status, lock and slot given back."""
    from django.utils import timezone

    from imports.locks import project_lock
    from imports.models import ImportRun
    from imports.services.slots import run_slot_release

    fields.setdefault("finished_at", timezone.now())
    ImportRun.objects.filter(pk=run.pk).update(status=status, **fields)
    project_lock(run.project_id, token=run.lock_token).release()
    run_slot_release(connector_id=run.project.connector_id, token=run.lock_token)
    run.refresh_from_db()
    return run


@pytest.fixture(scope="session", autouse=True)
def _control_queue_cleanup():
    """Beat processes in tests send sweeps nobody consumes: drop them after."""
    yield
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(settings.IMPORTHUB_CONTROL_QUEUE)
    broker.close()
