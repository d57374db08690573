"""Many processes contending for one lock or semaphore never overlap."""

from __future__ import annotations

import pytest

from tests.locking import workers

PROCESSES = 32
ITERATIONS = 200
#: Semaphore takes poll (a take never waits), so fewer rounds of them.
SEMAPHORE_ITERATIONS = 50


def run_all(mp_context, target, args) -> None:
    processes = [mp_context.Process(target=target, args=args) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0] * PROCESSES


@pytest.mark.slow
def test_lock_never_has_two_holders(mp_context, redis_client, redis_url, prefix):
    """32 processes x 200 blocking takes of one lock: the witness counter
    never sees two holders inside, every release succeeds, and the fences
    handed out are unique and increase in the order the holders entered."""
    run_all(mp_context, workers.lock_storm, (redis_url, prefix, "hot", ITERATIONS))
    assert redis_client.get(f"{prefix}overlaps") is None
    assert int(redis_client.get(f"{prefix}witness")) == 0
    fences = [int(f) for f in redis_client.lrange(f"{prefix}fences", 0, -1)]
    assert len(fences) == PROCESSES * ITERATIONS
    assert fences == sorted(set(fences))


@pytest.mark.slow
def test_semaphore_never_exceeds_its_limit(mp_context, redis_client, redis_url, prefix):
    """32 processes x 50 takes of a semaphore of 3, each retried until it
    succeeds: never more than 3 holders inside at once, and the slots are
    actually shared."""
    limit = 3
    run_all(
        mp_context,
        workers.semaphore_storm,
        (redis_url, prefix, "conn", limit, SEMAPHORE_ITERATIONS),
    )
    assert redis_client.get(f"{prefix}overlaps") is None
    assert int(redis_client.get(f"{prefix}witness")) == 0
    assert 1 < int(redis_client.get(f"{prefix}peak")) <= limit
