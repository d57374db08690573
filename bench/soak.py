"""Soak: random dispatch storms and faults against real workers, checked.

``make soak`` (``python -m bench.soak``) runs for about ``SOAK_SECONDS``
(300 by default) against a world of its own:

- a fresh PostgreSQL database ``importhub_soak`` (dropped, created, migrated;
  dropped again at the end), a private ``redis-server`` that is both the lock
  store and the Celery broker (so FLUSHALL harms nobody else), and short
  timings for every process (lease 4 s, sweep every 1 s, retries 0.3-3 s);
- 2 real ``celery worker`` processes (prefork, 2 children each) and a real
  ``celery beat`` with the database scheduler, whose only job is the sweep
  (``imports.runs_sweep``: reap lost workers, dispatch due retries, promote
  waiting runs). Each runs in its own process group, logs in ``var/soak/``;
- 3 CSV connectors with 1, 2 and 3 slots (the 2-slot one rejects when busy,
  the others queue) and 20 projects over them, upsert and replace, 2-3
  retries. Most read local files; a few read a URL from a local HTTP server
  that answers 500 or 429 at random before 200 (transient failures).

Every file is rewritten between trials with a new ``version`` column in every
row; replace projects also change their number of rows (so rows are deleted),
upsert projects keep their key range (so the union of keys is the file).

A trial (10-20 s) is: dispatch storms from threads (random projects, each
asked for 1-4 times at the same instant; "busy" refusals are the guard doing
its job and are counted, not flagged), random cancels of active runs, and one
fault: SIGKILL of a worker's process group (restarted a few seconds later),
SIGSTOP of one for lease + 2 s, ``pg_terminate_backend`` of the workers'
active database backends, or FLUSHALL of Redis (locks, slots and queued
broker messages vanish).

What is checked, and why:

- while the trial runs, a monitor samples every 50 ms: at most one active run
  per project (the one rule), at most ``slots`` runs *running* with a live
  lease per connector, and at most ``slots`` holders of the connector's Redis
  semaphore. A run left ``running`` by a dead or paused worker no longer holds
  a lease (its heartbeat is older than the lease) and is not counted; it is
  reported as a note when it pushes the raw count over the limit;
- after the storm, every run must reach a final state within 60 s (the beat
  sweep does the reaping and the retries; nobody relaunches anything);
- every final run says why: failed and cancelled runs carry an error message,
  succeeded runs carry counts that add up to the file they read;
- record counts are exact: each project holds exactly the rows of the file
  version its most recent succeeded run read, all of that version, and
  nothing else - failed, cancelled, killed or fenced-off runs leave the data
  as the last success left it.

It prints one line per trial and ``trials: N, violations: M``; every
violation is printed with its evidence (run ids, states, events). It exits 1
if there was any. Runs that never become final are reported, then the
project is force-unlocked (the operator's tool) so that the next trial
starts clean; its expectation is kept, since a failed run changes no data.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "soak"
DB_NAME = os.environ.get("SOAK_DB", "importhub_soak")
PG = os.environ.get("SOAK_PG", "postgres://postgres@127.0.0.1:5432")
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))

LEASE_SECONDS = 4.0
SETTLE_SECONDS = 60.0  # how long a trial's runs may take to become final
SAMPLE_SECONDS = 0.05
PROJECTS = 20
URL_PROJECTS = 4
# (name, slots, when_busy)
CONNECTORS = [
    ("one-slot", 1, "queue"),
    ("two-slots", 2, "reject"),
    ("three", 3, "queue"),
]
WORKER_APP = "soak-worker"  # the workers' application_name in PostgreSQL

# The settings every process of the soak shares (the driver included).
SETTINGS_ENV = {
    "IMPORTHUB_LEASE_SECONDS": str(LEASE_SECONDS),
    "IMPORTHUB_SWEEP_SECONDS": "1",
    "IMPORTHUB_RETRY_BASE_SECONDS": "0.3",
    "IMPORTHUB_RETRY_MAX_SECONDS": "3",
    "IMPORTHUB_CANCEL_GRACE_SECONDS": "3",
    "IMPORTHUB_REDISPATCH_SECONDS": "10",
    "IMPORTHUB_CONTROL_QUEUE": f"soak-control-{uuid.uuid4().hex[:8]}",
    "LOG_LEVEL": "WARNING",
    "IMPORTHUB_TASK_QUEUE": f"soak-{uuid.uuid4().hex[:8]}",
    "IMPORTHUB_REDIS_PREFIX": f"soak-{uuid.uuid4().hex[:8]}:",
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "PYTHONPATH": str(ROOT),
}

ACTIVE = ("queued", "waiting", "running", "retrying")
# Failures the faults explain: retries used up on the flaky server, a lost
# worker whose retries were used up, a run that lost its lock (flush, pause).
EXPECTED_FAILURES = ("TransientSourceError", "WorkerLost", "LockLost")


def log(message: str) -> None:
    print(message, flush=True)


# -- the world: Redis, processes, files ------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the soak's own (as tests.locking.conftest's):
    nothing persisted, so FLUSHALL and a kill lose everything."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(WORK),
            ],
            stdout=(WORK / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class Service:
    """A real celery process (worker or beat) in a process group of its own."""

    def __init__(
        self, name: str, argv: list[str], env: dict, ready: bytes | None, node=""
    ):
        self.name = name
        self.node = node  # a worker's Celery node name
        self.argv = argv
        self.env = env
        self.ready = ready
        self.log_path = WORK / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.stopped = False  # SIGSTOPped right now

    def start(self, timeout: float = 60) -> Service:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.ready is None:
            return self
        deadline = time.monotonic() + timeout
        while True:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                if self.ready in f.read():
                    return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole group (the worker and its pool children)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.stopped = False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.kill()
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()  # the children too, whatever the parent did


def worker(index: int, env: dict) -> Service:
    node = f"soak{index}-{uuid.uuid4().hex[:6]}"
    argv = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "INFO",
        "-P", "prefork", "-c", "2", "-Q",
        f"{env['IMPORTHUB_TASK_QUEUE']},{env['IMPORTHUB_CONTROL_QUEUE']}",
        "-n", f"{node}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    worker_env = {**env, "DATABASE_URL": f"{env['DATABASE_URL']}?application_name="}
    worker_env["DATABASE_URL"] += WORKER_APP
    return Service(f"worker-{index}", argv, worker_env, ready=b" ready.", node=node)


def beat(env: dict) -> Service:
    argv = [
        sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO",
        "-S", "django_celery_beat.schedulers:DatabaseScheduler",
        "--pidfile", str(WORK / "beat.pid"),
    ]  # fmt: skip
    beat_env = {**env, "DATABASE_URL": f"{env['DATABASE_URL']}?application_name="}
    beat_env["DATABASE_URL"] += "soak-beat"
    return Service("beat", argv, beat_env, ready=b"beat: Starting")


@dataclass
class Source:
    """One project's source file; ``version`` is in every row written."""

    project_id: int
    path: Path
    mode: str
    base_rows: int
    version: int = 0
    rows: int = 0
    body: bytes = b""

    def rewrite(self, rnd: random.Random) -> None:
        """Write the next version, atomically (a reader sees old or new)."""
        self.version += 1
        if self.mode == "replace":
            # Fewer or more rows: a replace must delete what is gone.
            self.rows = max(1, int(self.base_rows * rnd.uniform(0.6, 1.0)))
        else:
            self.rows = self.base_rows  # same keys: the union is the file
        salt = rnd.randrange(10**6)
        lines = ["id,version,payload\n"]
        lines += [
            f"{i},{self.version},v{self.version}-{(i * 7919 + salt) % 100003}\n"
            for i in range(self.rows)
        ]
        self.body = "".join(lines).encode()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(self.body)
        tmp.rename(self.path)


@dataclass
class Expectation:
    """What a project's records must be: the last succeeded run's file."""

    version: int | None = None  # None: never imported, no records
    rows: int = 0
    run_id: int | None = None


@dataclass
class Trial:
    number: int
    fault: str = ""
    fault_detail: str = ""
    started: int = 0
    rejected_busy: int = 0
    rejected_connector: int = 0
    not_cancellable: int = 0
    cancels: int = 0
    request_errors: int = 0
    samples: int = 0
    most_running: Counter = field(default_factory=Counter)  # connector: max live
    most_holders: Counter = field(default_factory=Counter)  # connector: max held
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seen: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def violation(self, key, message: str) -> None:
        """Record a violation once per distinct episode ``key``."""
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
            self.violations.append(message)
        log(f"  VIOLATION (trial {self.number}): {message}")

    def note(self, key, message: str) -> None:
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
            self.notes.append(message)

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


# -- the soak --------------------------------------------------------------


def setup_django(redis_url: str) -> dict:
    """Create the database, point this process at it; return the env."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(SETTINGS_ENV)
    os.environ["DATABASE_URL"] = f"{PG}/{DB_NAME}"
    os.environ["REDIS_URL"] = redis_url
    os.environ["CELERY_BROKER_URL"] = redis_url
    # The soak's files live in var/soak and its HTTP source on loopback:
    # both outside what a deployment allows by default.
    os.environ["IMPORTHUB_CSV_ROOTS"] = str(WORK)
    os.environ["IMPORTHUB_HTTP_ALLOWED_HOSTS"] = "127.0.0.1"
    env = dict(os.environ)
    os.environ["DATABASE_URL"] += "?application_name=soak-driver"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


class Soak:
    def __init__(self, env: dict, redis_server: PrivateRedis):
        import redis

        self.env = env
        self.redis_server = redis_server
        self.redis = redis.Redis.from_url(redis_server.url, socket_timeout=5)
        self.rnd = random.Random(SEED)
        self.workers: list[Service] = []
        self.beat: Service | None = None
        self.http = None
        self.sources: dict[int, Source] = {}
        self.expect: dict[int, Expectation] = {}
        self.slots: dict[int, int] = {}  # connector id -> slots
        self.connector_of: dict[int, int] = {}  # project id -> connector id
        self.trial: Trial | None = None
        self.monitoring = threading.Event()
        self.done = threading.Event()
        self.fault_order: list[str] = []

    # - set-up -

    def build(self) -> None:
        from connectors.models import Connector
        from imports.models import Project
        from tests.connectors.servers import LocalHttpServer, Reply

        self.http = LocalHttpServer().start()
        connectors = [
            Connector.objects.create(
                name=name, kind="csv", max_concurrent_imports=slots, when_busy=busy
            )
            for name, slots, busy in CONNECTORS
        ]
        self.slots = {c.pk: c.max_concurrent_imports for c in connectors}
        url_indexes = set(self.rnd.sample(range(PROJECTS), URL_PROJECTS))
        for i in range(PROJECTS):
            connector = connectors[i % len(connectors)]
            mode = "replace" if i % 3 == 1 else "upsert"
            project = Project.objects.create(
                name=f"soak-{i:02d}",
                connector=connector,
                source={"path": "/nonexistent"},
                key_fields=["id"],
                mode=mode,
                max_retries=self.rnd.choice((2, 3)),
                # Both layouts: JSON records and typed tables.
                layout="table" if i % 2 else "records",
            )
            source = Source(
                project_id=project.pk,
                path=WORK / "data" / f"project-{project.pk}.csv",
                mode=mode,
                base_rows=self.rnd.randint(2_000, 30_000),
            )
            source.rewrite(self.rnd)
            if i in url_indexes:
                route = f"/p{project.pk}.csv"
                self.http.route(route, self._flaky(source, Reply))
                project.source = {"url": self.http.url(route)}
            else:
                project.source = {"path": str(source.path)}
            project.save()
            self.sources[project.pk] = source
            self.expect[project.pk] = Expectation()
            self.connector_of[project.pk] = connector.pk

    def _flaky(self, source: Source, reply_class):
        """A route answering 500 or 429 (transient) at random, else the file."""
        rnd = random.Random(SEED + source.project_id)
        lock = threading.Lock()

        def answer(request):
            with lock:
                draw = rnd.random()
            if draw < 0.3:
                return reply_class(b"overloaded", status=500)
            if draw < 0.45:
                return reply_class(
                    b"slow down", status=429, headers={"Retry-After": "1"}
                )
            return reply_class(source.body, headers={"Content-Type": "text/csv"})

        return answer

    def start_services(self) -> None:
        self.workers = [worker(i, self.env).start() for i in (1, 2)]
        self.beat = beat(self.env).start()

    def stop_services(self) -> None:
        for service in [*self.workers, self.beat]:
            if service is not None:
                service.stop()
        if self.http is not None:
            self.http.stop()

    # - the monitor -

    def monitor(self) -> None:
        """Sample the invariants every 50 ms while a trial is on."""
        import psycopg

        from imports.locks import connector_slots_for_id

        conn = psycopg.connect(
            f"{PG}/{DB_NAME}", autocommit=True, application_name="soak-monitor"
        )
        try:
            while not self.done.is_set():
                if not self.monitoring.wait(0.2):
                    continue
                trial = self.trial
                try:
                    self._sample(conn, trial, connector_slots_for_id)
                    trial.samples += 1
                except Exception as exc:  # never let the monitor die silently
                    log(f"  monitor: {type(exc).__name__}: {exc}")
                    conn.close()
                    conn = psycopg.connect(
                        f"{PG}/{DB_NAME}",
                        autocommit=True,
                        application_name="soak-monitor",
                    )
                time.sleep(SAMPLE_SECONDS)
        finally:
            conn.close()

    def _sample(self, conn, trial: Trial, slots_for) -> None:
        doubled = conn.execute(
            "SELECT project_id, array_agg(id ORDER BY id), array_agg(status) "
            "FROM imports_importrun WHERE status = ANY(%s) "
            "GROUP BY project_id HAVING count(*) > 1",
            [list(ACTIVE)],
        ).fetchall()
        for project_id, ids, statuses in doubled:
            trial.violation(
                ("two-active", project_id, tuple(ids)),
                f"project {project_id} has {len(ids)} active runs: "
                f"{list(zip(ids, statuses, strict=True))}",
            )
        running = conn.execute(
            "SELECT p.connector_id, r.id, r.heartbeat_at >= now() - "
            "make_interval(secs => %s) FROM imports_importrun r "
            "JOIN imports_project p ON p.id = r.project_id "
            "WHERE r.status = 'running'",
            [LEASE_SECONDS],
        ).fetchall()
        live, raw = defaultdict(list), defaultdict(list)
        for connector_id, run_id, fresh in running:
            raw[connector_id].append(run_id)
            if fresh:
                live[connector_id].append(run_id)
        for connector_id, limit in self.slots.items():
            trial.most_running[connector_id] = max(
                trial.most_running[connector_id], len(live[connector_id])
            )
            if len(live[connector_id]) > limit:
                ids = tuple(sorted(live[connector_id]))
                trial.violation(
                    ("running", connector_id, ids),
                    f"connector {connector_id} ({limit} slots) has "
                    f"{len(ids)} runs running with a live lease: {list(ids)}",
                )
            elif len(raw[connector_id]) > limit:
                ids = tuple(sorted(raw[connector_id]))
                trial.note(
                    ("raw-running", connector_id, ids),
                    f"connector {connector_id} ({limit} slots): runs {list(ids)} "
                    f"'running', of which {sorted(live[connector_id])} live",
                )
            holders = slots_for(connector_id).holders()
            trial.most_holders[connector_id] = max(
                trial.most_holders[connector_id], len(holders)
            )
            if len(holders) > limit:
                tokens = tuple(sorted(token for token, _ in holders))
                trial.violation(
                    ("holders", connector_id, tokens),
                    f"connector {connector_id} ({limit} slots) has "
                    f"{len(holders)} slot holders: {self._runs_of_tokens(tokens)}",
                )

    def _runs_of_tokens(self, tokens) -> list:
        from imports.models import ImportRun

        found = dict(
            ImportRun.objects.filter(lock_token__in=tokens).values_list(
                "lock_token", "id"
            )
        )
        return [found.get(token, f"token {token[:8]}") for token in tokens]

    # - the storm -

    def storm_wave(self, trial: Trial) -> None:
        """Random projects, each asked for 1-4 times at the same instant."""
        projects = self.rnd.sample(sorted(self.sources), self.rnd.randint(4, 9))
        calls = [p for p in projects for _ in range(self.rnd.randint(1, 4))]
        barrier = threading.Barrier(len(calls))
        threads = [
            threading.Thread(target=self._request, args=(trial, p, barrier))
            for p in calls
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _request(self, trial: Trial, project_id: int, barrier) -> None:
        from django.db import connections

        from imports.exceptions import ConnectorBusy, ProjectBusy
        from imports.models import Project
        from imports.services.guard import import_run_request

        try:
            project = Project.objects.select_related("connector").get(pk=project_id)
            try:
                barrier.wait(10)
            except threading.BrokenBarrierError:
                pass
            import_run_request(project=project, requested_by="soak", trigger="command")
            trial.count("started")
        except ProjectBusy:
            trial.count("rejected_busy")
        except ConnectorBusy:
            trial.count("rejected_connector")
        except Exception as exc:
            # Redis and the broker stay up in every fault, so the guard has
            # no reason to fail: anything else is the system's error.
            trial.count("request_errors")
            trial.violation(
                ("request", project_id, type(exc).__name__, trial.request_errors),
                f"import_run_request(project {project_id}) raised "
                f"{type(exc).__name__}: {exc}\n"
                + "".join(traceback.format_exc(limit=6)),
            )
        finally:
            connections.close_all()

    def cancels(self, trial: Trial, until: float) -> None:
        """Cancel a few random active runs at random moments."""
        from django.db import connections

        from imports.exceptions import RunNotCancellable
        from imports.models import ImportRun
        from imports.services.operations import import_run_cancel

        try:
            for _ in range(self.rnd.randint(1, 3)):
                time.sleep(self.rnd.uniform(0.5, max(until - time.monotonic(), 0.6)))
                active = list(ImportRun.objects.active())
                if not active:
                    continue
                run = self.rnd.choice(active)
                try:
                    import_run_cancel(
                        run=run, cancelled_by="soak", reason="random cancel"
                    )
                    trial.count("cancels")
                except RunNotCancellable:
                    trial.count("not_cancellable")
        finally:
            connections.close_all()

    # - the faults -

    def fault(self, trial: Trial) -> None:
        if not self.fault_order:
            self.fault_order = ["sigkill", "sigstop", "pg_terminate", "flushall"]
            self.rnd.shuffle(self.fault_order)
        trial.fault = self.fault_order.pop()
        time.sleep(self.rnd.uniform(0.5, 4.0))
        self.wait_for_activity(trial.fault)
        getattr(self, f"fault_{trial.fault}")(trial)

    def wait_for_activity(self, fault: str, timeout: float = 5.0) -> None:
        """Strike while there is something to hurt: a run running (or, for a
        flush, also one queued or waiting, whose message or slot it drops)."""
        from django.db import connections

        from imports.models import ImportRun

        wanted = ["running"]
        if fault == "flushall":
            # Best: a message still waiting in the broker's queue.
            queue = self.env["IMPORTHUB_TASK_QUEUE"]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.redis.llen(queue):
                    return
                time.sleep(0.005)
            wanted += ["queued", "waiting"]
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if ImportRun.objects.filter(status__in=wanted).exists():
                    return
                time.sleep(0.02)
        finally:
            connections.close_all()

    def busy_worker(self) -> tuple[int, list[int]]:
        """A worker with imports in progress (asked of the workers themselves
        by Celery's remote control), and the runs it has; else a random one."""
        from config.celery import app

        nodes = {w.node: i for i, w in enumerate(self.workers)}
        try:
            inspect = app.control.inspect(timeout=1.0, limit=len(self.workers))
            active = inspect.active() or {}
        except Exception:
            active = {}
        busy = []
        for name, tasks in active.items():
            index = nodes.get(name.split("@")[0])
            runs = sorted(
                (t.get("kwargs") or {}).get("run_id")
                for t in tasks
                if t.get("name") == "imports.import_run_execute"
            )
            if index is not None and runs:
                busy.append((index, runs))
        if busy:
            return self.rnd.choice(busy)
        return self.rnd.randrange(len(self.workers)), []

    def still_running(self, run_ids: list[int]) -> list[int]:
        """Which of the victim's runs the fault caught (not finished yet)."""
        from django.db import connections

        from imports.models import ImportRun

        try:
            return sorted(
                ImportRun.objects.filter(pk__in=run_ids, status="running").values_list(
                    "id", flat=True
                )
            )
        finally:
            connections.close_all()

    def fault_sigkill(self, trial: Trial) -> None:
        index, runs = self.busy_worker()
        victim = self.workers[index]
        victim.kill()
        trial.fault_detail = (
            f"worker-{index + 1} killed, it had runs {runs}, "
            f"{self.still_running(runs)} still running"
        )
        time.sleep(self.rnd.uniform(2.0, 5.0))
        self.workers[index] = worker(index + 1, self.env).start()

    def fault_sigstop(self, trial: Trial) -> None:
        index, runs = self.busy_worker()
        victim = self.workers[index]
        victim.signal(signal.SIGSTOP)
        victim.stopped = True
        trial.fault_detail = (
            f"worker-{index + 1} stopped {LEASE_SECONDS + 2:.0f} s, it had runs {runs}"
        )
        try:
            time.sleep(LEASE_SECONDS + 2)
        finally:
            victim.signal(signal.SIGCONT)
            victim.stopped = False

    def fault_pg_terminate(self, trial: Trial) -> None:
        """Terminate the workers' busy backends (waits up to 5 s for some)."""
        import psycopg

        killed = []
        deadline = time.monotonic() + 5
        with psycopg.connect(f"{PG}/{DB_NAME}", autocommit=True) as conn:
            while not killed and time.monotonic() < deadline:
                killed = conn.execute(
                    "SELECT pid, left(query, 40), pg_terminate_backend(pid) "
                    "FROM pg_stat_activity WHERE datname = %s "
                    "AND application_name = %s "
                    "AND state IN ('active', 'idle in transaction')",
                    [DB_NAME, WORKER_APP],
                ).fetchall()
                time.sleep(0.01)
        trial.fault_detail = f"{len(killed)} backends: " + "; ".join(
            q.split()[0] if q.split() else "?" for _, q, _ in killed
        )

    def fault_flushall(self, trial: Trial) -> None:
        from imports.models import ImportRun

        states = Counter(ImportRun.objects.active().values_list("status", flat=True))
        messages = self.redis.lrange(self.env["IMPORTHUB_TASK_QUEUE"], 0, -1)
        self.redis.flushall()
        tasks = Counter(
            json.loads(m).get("headers", {}).get("task", "?") for m in messages
        )
        trial.fault_detail = (
            f"broker messages dropped: {dict(tasks)}; active runs then: {dict(states)}"
        )
        if tasks["imports.import_run_execute"]:
            trial.note(
                "flushed",
                "queued runs whose message was dropped must still end: "
                + str(
                    list(
                        ImportRun.objects.filter(status="queued").values_list(
                            "id", flat=True
                        )
                    )
                ),
            )

    # - one trial -

    def run_trial(self, number: int) -> Trial:
        from imports.models import ImportRun, ImportRunEvent

        trial = Trial(number)
        first_id = ImportRun.objects.order_by("-id").values_list("id", flat=True)[:1]
        first_id = (first_id[0] if first_id else 0) + 1
        self.trial = trial
        self.monitoring.set()
        start = time.monotonic()
        storm_for = self.rnd.uniform(8, 14)
        fault = threading.Thread(target=self.fault, args=(trial,))
        cancels = threading.Thread(target=self.cancels, args=(trial, start + storm_for))
        fault.start()
        cancels.start()
        while time.monotonic() - start < storm_for:
            self.storm_wave(trial)
            time.sleep(self.rnd.uniform(0.5, 3.0))
        fault.join()
        cancels.join()
        storm_seconds = time.monotonic() - start
        settled = self.settle(trial)
        self.monitoring.clear()
        self.check(trial, first_id)
        runs = list(ImportRun.objects.filter(id__gte=first_id))
        by_status = Counter(run.status for run in runs)
        retries = sum(run.attempt - 1 for run in runs)
        failed = Counter(run.error_class for run in runs if run.status == "failed")
        events = Counter(
            ImportRunEvent.objects.filter(
                run_id__gte=first_id,
                kind__in=(
                    "reaped", "lock_lost", "resumed", "revoked", "stale_message",
                    "dispatch_failed", "waiting", "promoted",
                ),
            ).values_list("kind", flat=True)
        )  # fmt: skip
        names = dict(zip(self.slots, (c[0] for c in CONNECTORS), strict=True))
        most = ", ".join(
            f"{names[c]} {trial.most_running[c]}/{trial.most_holders[c]}/{n}"
            for c, n in self.slots.items()
        )
        log(
            f"trial {number:2d} {trial.fault:12s} [{trial.fault_detail}]\n"
            f"    started {trial.started}, rejected busy {trial.rejected_busy}, "
            f"connector busy {trial.rejected_connector}, cancelled "
            f"{by_status['cancelled']} ({trial.cancels} by the soak), succeeded "
            f"{by_status['succeeded']}, failed {by_status['failed']} "
            f"{dict(failed)}, retries {retries}, violations "
            f"{len(trial.violations)} (storm {storm_seconds:.1f} s, settled in "
            f"{settled:.1f} s)\n"
            f"    events {dict(events)}; {trial.samples} samples, most running"
            f"/slot holders/slots: {most}"
        )
        # Final with a reason, so not a violation; but a database cut is
        # transient by design, and any other class is worth reading.
        for run in runs:
            if run.status == "failed" and run.error_class not in EXPECTED_FAILURES:
                trial.note(
                    ("failed", run.pk), "unexpected failure: " + self.describe(run)
                )
        for note in trial.notes:
            log(f"    note: {note}")
        return trial

    def settle(self, trial: Trial) -> float:
        """Wait until every run is final; report and unlock those that aren't."""
        from imports.models import ImportRun, Project
        from imports.services.operations import project_force_unlock

        start = time.monotonic()
        while time.monotonic() - start < SETTLE_SECONDS:
            if not ImportRun.objects.active().exists():
                return time.monotonic() - start
            time.sleep(0.2)
        for run in ImportRun.objects.active().select_related("project"):
            trial.violation(
                ("not-final", run.pk),
                f"not final after {SETTLE_SECONDS:.0f} s: " + self.describe(run),
            )
            project_force_unlock(
                project=Project.objects.get(pk=run.project_id),
                unlocked_by="soak",
                reason=f"run {run.pk} not final after {SETTLE_SECONDS:.0f} s",
            )
        return time.monotonic() - start

    def describe(self, run) -> str:
        """A run's state, its events, and where its broker message is."""
        queue = self.env["IMPORTHUB_TASK_QUEUE"]
        in_queue = any(
            run.celery_task_id.encode() in message
            for message in self.redis.lrange(queue, 0, -1)
        )
        unacked = any(
            run.celery_task_id.encode() in message
            for message in self.redis.hvals("unacked")
        )
        events = [
            f"{e.at:%H:%M:%S.%f}"[:-3]
            + f" {e.kind}({e.actor})"
            + (f": {e.message[:80]}" if e.message else "")
            for e in run.events.order_by("at", "id")
        ]
        return (
            f"run {run.pk} of project {run.project_id} is {run.status} "
            f"(attempt {run.attempt}, created {run.created_at:%H:%M:%S}, "
            f"heartbeat {run.heartbeat_at and f'{run.heartbeat_at:%H:%M:%S}'}, "
            f"next attempt {run.next_attempt_at and f'{run.next_attempt_at:%H:%M:%S}'}"
            f", error {run.error_class!r}); task {run.celery_task_id} in queue: "
            f"{in_queue}, unacked: {unacked}; events: " + " | ".join(events)
        )

    # - the checks after a trial -

    def check(self, trial: Trial, first_id: int) -> None:
        from django.db.models import Count

        from imports.models import ImportRun, Record

        runs = ImportRun.objects.filter(id__gte=first_id).order_by("id")
        for run in runs:
            if run.status in ("failed", "cancelled") and not run.error_message.strip():
                trial.violation(
                    ("no-reason", run.pk),
                    f"{run.status} without a reason: " + self.describe(run),
                )
            if run.status == "succeeded":
                source = self.sources[run.project_id]
                merged = run.rows_inserted + run.rows_updated + run.rows_unchanged
                if (
                    run.finished_at is None
                    or run.rows_read != source.rows
                    or merged != source.rows
                    or run.rows_rejected
                ):
                    trial.violation(
                        ("counts", run.pk),
                        f"succeeded run {run.pk} of project {run.project_id} has "
                        f"counts read {run.rows_read}, inserted {run.rows_inserted}"
                        f", updated {run.rows_updated}, unchanged "
                        f"{run.rows_unchanged}, rejected {run.rows_rejected}; "
                        f"its file has {source.rows} rows",
                    )
        # The project's data is what its newest success read: this trial's
        # file if a run succeeded in it, else whatever was expected before.
        succeeded = (
            runs.filter(status="succeeded").order_by("project_id", "-id")
            .distinct("project_id").values_list("project_id", "id")
        )  # fmt: skip
        for project_id, run_id in succeeded:
            source = self.sources[project_id]
            self.expect[project_id] = Expectation(source.version, source.rows, run_id)
        actual = defaultdict(dict)
        for project_id, version, count in (
            Record.objects.values_list("project_id", "data__version")
            .annotate(n=Count("key"))
            .values_list("project_id", "data__version", "n")
        ):
            actual[project_id][int(version)] = count
        for project_id, version, count in self.table_versions():
            actual[project_id][int(version)] = count
        for project_id, expected in self.expect.items():
            want = {expected.version: expected.rows} if expected.version else {}
            if actual.get(project_id, {}) != want:
                trial.violation(
                    ("records", project_id),
                    f"project {project_id} holds records {{version: count}} "
                    f"{actual.get(project_id, {})}; expected {want} from run "
                    f"{expected.run_id}",
                )

    def table_versions(self):
        """``(project, version, rows)`` of the typed tables' data."""
        from django.db import connection

        from imports.loading import Target
        from imports.models import Project

        for project in Project.objects.filter(layout="table"):
            target = Target(project)
            if not target.table_exists():
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT version, count(*) FROM "
                    f"{target.qualified(target.table)} GROUP BY version"
                )
                for version, count in cursor.fetchall():
                    yield project.pk, version, count

    def rewrite_sources(self) -> None:
        for source in self.sources.values():
            source.rewrite(self.rnd)


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "data").mkdir(exist_ok=True)
    for old in WORK.glob("*.log"):
        old.unlink()
    redis_server = PrivateRedis()
    soak: Soak | None = None
    monitor: threading.Thread | None = None
    trials: list[Trial] = []
    # A SIGTERM (a stopped session) still cleans up: it becomes SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        redis_server.start()
        env = setup_django(redis_server.url)
        soak = Soak(env, redis_server)
        soak.build()
        soak.start_services()
        monitor = threading.Thread(target=soak.monitor, daemon=True)
        monitor.start()
        log(
            f"soak: {SOAK_SECONDS:.0f} s, seed {SEED}, {PROJECTS} projects, "
            f"connectors {CONNECTORS}, logs in {WORK}"
        )
        began = time.monotonic()
        while time.monotonic() - began < SOAK_SECONDS - 10:
            trials.append(soak.run_trial(len(trials) + 1))
            soak.rewrite_sources()
    finally:
        if soak is not None:
            soak.done.set()
            soak.stop_services()
        if monitor is not None:
            monitor.join(5)
        redis_server.stop()
        try:
            drop_database()
        except Exception as exc:
            log(f"could not drop {DB_NAME}: {exc}")
    violations = [v for trial in trials for v in trial.violations]
    faults = Counter(trial.fault for trial in trials)
    log(f"faults: {dict(faults)}")
    log(f"trials: {len(trials)}, violations: {len(violations)}")
    for trial in trials:
        for violation in trial.violations:
            log(f"  trial {trial.number} [{trial.fault}]: {violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
