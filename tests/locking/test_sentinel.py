"""The lock store behind Redis Sentinel: a client built from a
``sentinel://`` URL follows the master through failovers, a lock's renewer
rides out the failover, and an error during it is ``LockingUnavailable``.

A master, a replica and three sentinels of the test's own on loopback
(``tests/redis_topologies.py``); the shared Redis is not touched.
"""

import threading
import time
import uuid

import pytest

from locking import Lock, LockingUnavailable, Renewer, make_redis_client
from tests.redis_topologies import sentinel_group

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    with sentinel_group(tmp_path_factory.mktemp("sentinel")) as group:
        yield group


@pytest.mark.parametrize("kill", [False, True], ids=["sentinel-failover", "kill"])
def test_a_renewed_lock_survives_a_failover(group, kill):
    """The holder keeps its lock across the failover (its renewer retries
    until the new master answers), a second taker is refused before, during
    and after, and fences keep growing on the new master. After a killed
    master, if Redis lost the data anyway, the holder is told."""
    client = make_redis_client(group.url, socket_timeout=1)
    prefix = f"sentinel-{uuid.uuid4().hex[:8]}:"
    holder = Lock(client, "project:1", ttl=6, prefix=prefix)
    fence = holder.acquire(blocking=False)
    assert fence >= 1
    # Replication is asynchronous: a key the replica has not had yet is gone
    # when the master dies (the group's replica may still be syncing after
    # the previous failover). The test is about the renewer, so it waits
    # until the replica acknowledged the lock.
    assert client.execute_command("WAIT", 1, 10_000) >= 1, "the replica lags"
    lost = []
    renewer = Renewer(lock=holder, interval=0.5, on_lost=lost.append).start()
    refusals = unavailable = 0
    second: list[int] = []
    stop = threading.Event()

    def contend():
        nonlocal refusals, unavailable
        other = make_redis_client(group.url, socket_timeout=1)
        while not stop.is_set():
            try:
                taken = Lock(other, "project:1", ttl=6, prefix=prefix).acquire(
                    blocking=False
                )
                if taken is None:
                    refusals += 1
                else:
                    second.append(taken)
            except LockingUnavailable:
                unavailable += 1
            time.sleep(0.05)

    contender = threading.Thread(target=contend)
    contender.start()
    try:
        took = group.failover(kill=kill)
        time.sleep(1.5)  # a few renewals on the new master
    finally:
        stop.set()
        contender.join(10)
        renewer.stop()
    print(
        f"\nsentinel lock: failover={'kill' if kill else 'sentinel'} "
        f"took={took:.1f}s refusals={refusals} unavailable={unavailable} "
        f"lost={lost} second holders={second}"
    )
    if kill and lost:
        # Seen in CI (three test processes on two cores): the renewal went on
        # on the new master, then found the lock gone, and a second taker
        # got fence 1 again, so the master it wrote to had lost the whole
        # dataset. Why was not pinned down (not reproduced on an idle
        # machine; a second failover of a busy group, whose sentinels give
        # a master one second, would do it). Redis keeps no lock through
        # that; what must hold is that the holder is told, so that its run
        # stops (the guard's fence floor in the database keeps it out).
        assert lost == [f"lock 'project:1' lost (fence {fence})"]
        return
    assert second == [], "a second holder got the lock"
    assert lost == []
    assert holder.owned()
    assert refusals > 0
    assert holder.release() is True
    successor = Lock(client, "project:1", ttl=6, prefix=prefix)
    assert successor.acquire(blocking=False) > fence
    successor.release()


def test_no_master_at_all_is_locking_unavailable(tmp_path):
    """Sentinels that know no such master: the error is LockingUnavailable,
    never a raw redis-py error."""
    from tests.locking.conftest import free_port

    client = make_redis_client(
        f"sentinel://127.0.0.1:{free_port()}/nomaster/0", socket_timeout=0.3
    )
    with pytest.raises(LockingUnavailable):
        Lock(client, "project:1", ttl=5).acquire(blocking=False)
