"""Fifty simultaneous requests for one project: exactly one is dispatched."""

import json
import subprocess
import sys
import threading

import pytest
from django.db import connections

from imports.exceptions import PROJECT_BUSY_MESSAGE, ProjectBusy
from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.conftest import ROOT, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REQUESTS = 50

# Run in a separate interpreter: waits on a barrier file, then asks once.
CHILD = r"""
import json, os, sys, time
import django
django.setup()
from imports.exceptions import ProjectBusy
from imports.models import ImportRun, Project
from imports.services.guard import import_run_request
project = Project.objects.select_related("connector").get(pk=int(sys.argv[1]))
go = sys.argv[2]
open(go + f".ready-{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
try:
    run = import_run_request(project=project, requested_by="child", trigger="command")
    print(json.dumps({"accepted": run.pk}))
except ProjectBusy as exc:
    print(json.dumps({"rejected": str(exc)}))
"""


def test_threads_exactly_one_accepted(make_project, published):
    """50 threads at once: 1 accepted, 49 rejected with the exact message."""
    project = make_project()
    barrier = threading.Barrier(REQUESTS)
    accepted, rejected, errors = [], [], []

    def ask():
        try:
            barrier.wait()
            run = import_run_request(
                project=project, requested_by="thread", trigger="command"
            )
            accepted.append(run.pk)
        except ProjectBusy as exc:
            rejected.append(str(exc))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(accepted) == 1
    assert rejected == [PROJECT_BUSY_MESSAGE.format(project_id=project.pk)] * 49
    assert ImportRun.objects.filter(project=project).count() == 1
    assert published() == 1


def test_processes_exactly_one_accepted(
    make_project, published, worker_env, redis_prefix, task_queue, tmp_path
):
    """50 separate processes at once: 1 accepted, 49 rejected, 1 message."""
    project = make_project()
    go = tmp_path / "go"
    env = {
        **worker_env,
        "IMPORTHUB_REDIS_PREFIX": redis_prefix,
        "IMPORTHUB_TASK_QUEUE": task_queue,
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(project.pk), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(REQUESTS)
    ]
    try:
        # Start them together, once every child has Django loaded.
        wait_for(
            lambda: len(list(tmp_path.glob("go.ready-*"))) == REQUESTS,
            timeout=120,
            message="the child processes did not all start",
        )
        go.touch()
        outcomes = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        # A failed start must not leave 50 interpreters waiting for ever.
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    accepted = [o for o in outcomes if "accepted" in o]
    rejected = [o["rejected"] for o in outcomes if "rejected" in o]
    assert len(accepted) == 1
    assert rejected == [PROJECT_BUSY_MESSAGE.format(project_id=project.pk)] * 49
    assert ImportRun.objects.filter(project=project).count() == 1
    assert published() == 1
