"""The lock and the semaphore on a real Redis Cluster of three nodes.

Every key one script touches shares a hash tag (the lock's name), so the
scripts run on a Cluster: no CROSSSLOT. The test starts its own nodes on
loopback ports (``redis-server --cluster-enabled yes``), joins them with
``redis-cli --cluster create`` and stops them afterwards; the shared Redis
is not touched.
"""

import shutil
import time
import uuid

import pytest

from locking import Lock, Semaphore
from tests.redis_topologies import local_cluster

pytestmark = pytest.mark.skipif(
    shutil.which("redis-cli") is None, reason="redis-cli is needed to build a cluster"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_cluster(lambda: tmp_path_factory.mktemp("node")) as (client, _nodes):
        yield client


def test_lock_take_extend_release_and_fence_on_a_cluster(cluster):
    prefix = f"cluster-{uuid.uuid4().hex[:8]}:"
    names = [f"project:{i}" for i in range(20)]  # spread over the slots
    slots = {cluster.keyslot(Lock.keys(name, prefix)[0]) for name in names}
    assert len(slots) > 1
    for name in names:
        first = Lock(cluster, name, ttl=5, prefix=prefix)
        second = Lock(cluster, name, ttl=5, prefix=prefix)
        fence = first.acquire(blocking=False)
        assert fence == 1
        assert second.acquire(blocking=False) is None
        assert first.extend() is True
        assert first.release() is True
        assert second.acquire(blocking=False) == 2  # the fence only grows
        assert second.release() is True


def test_a_fence_floor_holds_on_a_cluster(cluster):
    prefix = f"cluster-{uuid.uuid4().hex[:8]}:"
    lock = Lock(cluster, "project:floor", ttl=5, prefix=prefix)
    assert lock.acquire(blocking=False, fence_floor=41) == 42
    lock.release()


def test_a_blocked_taker_is_woken_by_the_release(cluster):
    prefix = f"cluster-{uuid.uuid4().hex[:8]}:"
    holder = Lock(cluster, "project:wait", ttl=5, prefix=prefix)
    holder.acquire(blocking=False)
    waiter = Lock(cluster, "project:wait", ttl=5, prefix=prefix)
    import threading

    taken = []
    thread = threading.Thread(
        target=lambda: taken.append(waiter.acquire(blocking=True, timeout=10))
    )
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    holder.release()
    thread.join(timeout=10)
    assert taken == [2]
    assert time.monotonic() - started < 2
    waiter.release()


def test_semaphore_on_a_cluster(cluster):
    prefix = f"cluster-{uuid.uuid4().hex[:8]}:"
    slots = Semaphore(cluster, "connector:1", limit=2, ttl=5, prefix=prefix)
    assert slots.acquire("a") and slots.acquire("b")
    assert not slots.acquire("c")
    assert slots.release("a")
    assert slots.acquire("c")


def test_admission_on_a_cluster(cluster):
    """The guard's admission (lock, fence, slot, refusal counters) on a
    Cluster: the project's lock and the connector's leases live in different
    slots, and each part is decided where its keys are."""
    from locking.admission import Admission, Admitted, Full, Held, admit

    prefix = f"cluster-{uuid.uuid4().hex[:8]}:"
    slots = Semaphore(cluster, "connector:7", limit=1, ttl=5, prefix=prefix)
    busy, full = f"{prefix}stat:busy", f"{prefix}stat:full"

    def admission(project: int, token: str, **kwargs) -> Admission:
        lock = Lock(cluster, f"project:{project}", ttl=5, prefix=prefix, token=token)
        return Admission(lock, slots, busy_counter=busy, full_counter=full, **kwargs)

    first, again, other = admit(
        cluster, [admission(1, "a"), admission(1, "b"), admission(2, "c")]
    )
    assert first == Admitted(fence=1, slot=True)
    assert isinstance(again, Held) and again.holder == "a"
    assert other == Admitted(fence=1, slot=False)  # the only slot is taken
    (rejected,) = admit(cluster, [admission(3, "d", reject_when_full=True)])
    assert isinstance(rejected, Full)
    # A full connector that rejects gives the project's lock back.
    assert Lock(cluster, "project:3", ttl=5, prefix=prefix).acquire(blocking=False)
    (floored,) = admit(cluster, [admission(4, "e", fence_floor=41)])
    assert floored.fence == 42
    assert int(cluster.get(busy)) == 1 and int(cluster.get(full)) == 1
