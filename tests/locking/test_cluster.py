"""The lock and the semaphore on a real Redis Cluster of three nodes.

Every key one script touches shares a hash tag (the lock's name), so the
scripts run on a Cluster: no CROSSSLOT. The test starts its own nodes on
loopback ports (``redis-server --cluster-enabled yes``), joins them with
``redis-cli --cluster create`` and stops them afterwards; the shared Redis
is not touched.
"""

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from locking import Lock, Semaphore

from .conftest import PrivateRedis, free_port

pytestmark = pytest.mark.skipif(
    shutil.which("redis-cli") is None, reason="redis-cli is needed to build a cluster"
)


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    nodes = []
    try:
        for _ in range(3):
            folder = tmp_path_factory.mktemp("node")
            node = PrivateRedis(str(folder))
            node.port = cluster_port()
            node.url = f"redis://127.0.0.1:{node.port}/0"
            nodes.append(node)  # stopped afterwards, even if it fails to start
            node.start(
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(str(folder), "nodes.conf"),
                "--cluster-node-timeout", "2000",
            )  # fmt: skip
        subprocess.run(
            [
                shutil.which("redis-cli"), "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            info = redis.Redis(port=nodes[0].port).cluster("info")
            if info.get("cluster_state") == "ok":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not form: {info}")
            time.sleep(0.2)
        client = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=2)
        yield client
        client.close()
    finally:
        for node in nodes:
            node.stop()


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
