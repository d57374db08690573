"""Fixtures of the end-to-end tests: workers of a test's own, on its own queue."""

import uuid

import pytest

from tests.conftest import ARTIFACTS, WorkerProcess


@pytest.fixture
def own_queue(settings):
    """A broker queue only this test's workers consume."""
    settings.IMPORTHUB_TASK_QUEUE = f"faults-{uuid.uuid4().hex[:8]}"
    return settings.IMPORTHUB_TASK_QUEUE


@pytest.fixture
def start_worker(worker_env, own_queue, request):
    workers = []

    def start(*, pool="solo", concurrency=1, env=None) -> WorkerProcess:
        name = f"{request.node.name}-{len(workers)}"
        worker = WorkerProcess(
            env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue, **(env or {})},
            log_path=ARTIFACTS / "logs" / f"{name}.log",
            concurrency=concurrency,
            pool=pool,
        ).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
