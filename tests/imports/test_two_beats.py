"""Two real beat processes on one schedule never run a project twice."""

import re
import subprocess
import sys
import time
import uuid

import pytest

from imports.models import ImportRun, ProjectEvent
from imports.services.operations import import_run_cancel
from imports.services.schedules import project_schedule_set
from tests.conftest import LOGS, ROOT, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.brokers,
]

TICK_SECONDS = 2


class BeatProcess:
    def __init__(self, env: dict, name: str):
        self.log_path = LOGS / f"beat-{name}-{uuid.uuid4().hex[:6]}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "INFO",
                "--max-interval",
                "1",
                "--pidfile",
                str(self.log_path.with_suffix(".pid")),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def two_beats(worker_env, transactional_db, settings):
    env = dict(worker_env)
    # The beats share this test's queue and lock prefix, so the test sees
    # their locks and counts their messages.
    env["IMPORTHUB_TASK_QUEUE"] = settings.IMPORTHUB_TASK_QUEUE
    env["IMPORTHUB_REDIS_PREFIX"] = settings.IMPORTHUB_REDIS_PREFIX
    env["LOG_LEVEL"] = "INFO"
    beats = []

    def start():
        beats.extend([BeatProcess(env, "a"), BeatProcess(env, "b")])
        return beats

    yield start
    for beat in beats:
        beat.stop()


def test_two_beats_dispatch_each_tick_once(make_project, published, two_beats):
    """Two beats: one run per project per tick, busy ticks recorded as
    skipped, one broker message per run, and no error logged."""
    projects = [make_project() for _ in range(3)]
    for project in projects:
        project_schedule_set(project=project, every_seconds=TICK_SECONDS)
    beats = two_beats()

    # Phase 1: the first tick starts one run per project. Nothing consumes
    # the queue, so each run stays queued and every later tick of either
    # beat finds its project busy.
    wait_for(
        lambda: ImportRun.objects.count() == len(projects),
        timeout=30,
        message="the beats dispatched no runs",
    )
    wait_for(
        lambda: all(
            ProjectEvent.objects.filter(project=p, kind="skipped_busy").count() >= 2
            for p in projects
        ),
        timeout=30,
        message="busy ticks were not recorded",
    )
    for project in projects:
        assert ImportRun.objects.filter(project=project).count() == 1

    # Phase 2: free the projects; the next tick (of whichever beat) starts
    # exactly one new run each, and the other beat's copy is dropped or
    # refused.
    for run in ImportRun.objects.all():
        import_run_cancel(run=run, cancelled_by="test")
    wait_for(
        lambda: ImportRun.objects.active().count() == len(projects),
        timeout=30,
        message="no new runs after the projects were freed",
    )
    time.sleep(TICK_SECONDS * 2)  # more ticks of both beats
    for project in projects:
        assert ImportRun.objects.filter(project=project).count() == 2
        assert ImportRun.objects.active().filter(project=project).count() == 1
        assert set(
            ImportRun.objects.filter(project=project).values_list("trigger", flat=True)
        ) == {"schedule"}
    # One message per run: the second beat doubled nothing on the broker.
    assert published() == ImportRun.objects.count() == 2 * len(projects)

    logs = [beat.log() for beat in beats]
    for beat, log in zip(beats, logs, strict=True):
        assert beat.process.poll() is None, log[-3000:]
        # Each beat took part in the projects' ticks: it sent some, or found
        # them sent by the other (which one wins a tick is a race).
        assert re.search(
            r"Sending due task import project|tick of import project \d+ already "
            r"dispatched by another beat",
            log,
        ), log[-3000:]
        assert " ERROR" not in log and "Traceback" not in log, log[-3000:]
    assert any("Sending due task import project" in log for log in logs)
