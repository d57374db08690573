"""Fixtures of the end-to-end tests: workers of a test's own, on its own queue."""

import pytest

from tests.conftest import LOGS, WorkerProcess


@pytest.fixture
def own_queue(settings, broker):
    """A broker queue only this test's workers consume (deleted after)."""
    settings.IMPORTHUB_TASK_QUEUE = broker.queue("faults")
    yield settings.IMPORTHUB_TASK_QUEUE
    broker.delete(settings.IMPORTHUB_TASK_QUEUE)


@pytest.fixture
def start_worker(worker_env, own_queue, request):
    workers = []

    def start(*, pool="solo", concurrency=1, env=None) -> WorkerProcess:
        name = f"{request.node.name}-{len(workers)}".replace("/", "-")
        worker = WorkerProcess(
            env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue, **(env or {})},
            log_path=LOGS / f"{name}.log",
            concurrency=concurrency,
            pool=pool,
        ).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
