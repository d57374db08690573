"""Locks and leases under failure: killed, paused holders, Redis gone."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time

import pytest
import redis

from locking import (
    Lock,
    LockingUnavailable,
    Renewer,
    Semaphore,
    make_redis_client,
)
from tests.locking import workers
from tests.locking.conftest import PrivateRedis, free_port


def wait_ready(client: redis.Redis, prefix: str, timeout: float = 20) -> dict:
    popped = client.blpop([f"{prefix}ready"], timeout=timeout)
    assert popped is not None, "the child never reported ready"
    return json.loads(popped[1])


def stop_process(process) -> None:
    if process.is_alive():
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
    process.join(10)


def test_sigkilled_holder_frees_the_lock_after_its_ttl(
    mp_context, redis_client, redis_url, prefix
):
    """A holder killed with SIGKILL never releases; the lock is free again
    once its TTL has passed, and the next fence is larger."""
    child = mp_context.Process(
        target=workers.hold_lock, args=(redis_url, prefix, "p", 0.5)
    )
    child.start()
    try:
        ready = wait_ready(redis_client, prefix)
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        lock = Lock(redis_client, "p", ttl=5, prefix=prefix)
        assert lock.locked()
        assert lock.acquire() is None
        started = time.monotonic()
        fence = lock.acquire(blocking=True, timeout=5)
        assert fence is not None and fence > ready["fence"]
        assert time.monotonic() - started < 1.5
    finally:
        stop_process(child)


def test_sigkilled_holder_frees_its_lease_after_its_ttl(
    mp_context, redis_client, redis_url, prefix
):
    """A semaphore lease of a SIGKILLed holder expires by itself."""
    child = mp_context.Process(
        target=workers.hold_lease, args=(redis_url, prefix, "c", 0.5)
    )
    child.start()
    try:
        ready = wait_ready(redis_client, prefix)
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        semaphore = Semaphore(redis_client, "c", limit=1, ttl=5, prefix=prefix)
        assert [token for token, _ in semaphore.holders()] == [ready["token"]]
        assert semaphore.acquire() is None
        deadline = time.monotonic() + 5
        while semaphore.acquire() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        stop_process(child)


def test_paused_holder_loses_the_lock_and_is_told(
    mp_context, redis_client, redis_url, prefix
):
    """A holder SIGSTOPped past its TTL loses the lock to another; after
    SIGCONT its renewer reports the loss (once), its extend and release
    fail, and its fence is smaller than the new holder's."""
    ttl = 1.0
    child = mp_context.Process(
        target=workers.hold_renewed_lock, args=(redis_url, prefix, "p", ttl)
    )
    child.start()
    try:
        old_fence = wait_ready(redis_client, prefix)["fence"]
        time.sleep(ttl)  # the renewer keeps it alive meanwhile
        new_holder = Lock(redis_client, "p", ttl=30, prefix=prefix)
        assert new_holder.acquire() is None
        os.kill(child.pid, signal.SIGSTOP)
        new_fence = new_holder.acquire(blocking=True, timeout=10)
        assert new_fence is not None
        os.kill(child.pid, signal.SIGCONT)
        popped = redis_client.blpop([f"{prefix}result"], timeout=20)
        assert popped is not None
        result = json.loads(popped[1])
        assert result["lost"] is True
        assert "lost" in result["reason"]
        assert result["on_lost_calls"] == [result["reason"]]
        assert result["extend"] is False
        assert result["release"] is False
        assert result["fence"] == old_fence < new_fence
        assert new_holder.owned()
        child.join(10)
        assert child.exitcode == 0
    finally:
        stop_process(child)


def test_unreachable_redis_raises_at_once(prefix):
    """Nothing listens on the port: every operation raises
    LockingUnavailable, caused by redis.ConnectionError, within the socket
    timeout."""
    client = make_redis_client(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    lock = Lock(client, "p", ttl=5, prefix=prefix)
    semaphore = Semaphore(client, "c", limit=1, ttl=5, prefix=prefix)
    operations = [
        lock.acquire,
        lambda: lock.acquire(blocking=True),
        lock.release,
        lock.extend,
        lock.locked,
        lock.owner,
        lock.ttl_remaining,
        lambda: Lock.force_release(client, "p", prefix=prefix),
        semaphore.acquire,
        lambda: semaphore.release("t"),
        lambda: semaphore.extend("t"),
        semaphore.holders,
    ]
    for operation in operations:
        started = time.monotonic()
        with pytest.raises(LockingUnavailable) as info:
            operation()
        assert time.monotonic() - started < 1.5
        assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_silent_redis_times_out_within_the_socket_timeout(prefix):
    """A server that accepts connections but never answers: the take fails
    with LockingUnavailable after about the socket timeout, never hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        client = make_redis_client(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
        lock = Lock(client, "p", ttl=5, prefix=prefix)
        for operation in (lock.acquire, lambda: lock.acquire(blocking=True)):
            started = time.monotonic()
            with pytest.raises(LockingUnavailable) as info:
                operation()
            assert time.monotonic() - started < 2.0
            assert isinstance(
                info.value.__cause__, redis.TimeoutError | redis.ConnectionError
            )


def test_renewer_reports_loss_when_redis_stays_down(private_redis, prefix):
    """If Redis stays unreachable, the renewer retries until the lock would
    have expired, then reports it lost, saying Redis was unreachable."""
    client = make_redis_client(private_redis.url, socket_timeout=0.2)
    lock = Lock(client, "p", ttl=0.6, prefix=prefix)
    lock.acquire()
    with Renewer(lock=lock) as renewer:
        private_redis.stop()
        started = time.monotonic()
        assert renewer.lost.wait(5)
        assert 0.3 < time.monotonic() - started < 3
        assert "Redis unreachable" in renewer.lost_reason
        assert "past the 0.6s lease" in renewer.lost_reason
    client.close()


def test_renewer_rides_out_a_short_outage(private_redis, prefix):
    """A Redis pause shorter than the TTL is retried, not reported."""
    client = make_redis_client(private_redis.url, socket_timeout=0.2)
    admin = redis.Redis.from_url(private_redis.url)
    lock = Lock(client, "p", ttl=2.0, prefix=prefix)
    lock.acquire()
    renewed = threading.Event()
    with Renewer(lock=lock, interval=0.2, on_renewed=renewed.set) as renewer:
        assert renewed.wait(5)
        admin.client_pause(700)  # the renewer's extends time out meanwhile
        time.sleep(1.2)
        renewed.clear()
        assert renewed.wait(5)
        assert not renewer.lost.is_set()
    assert lock.owned()
    admin.close()
    client.close()


def test_fence_stays_monotonic_when_redis_loses_its_data(private_redis, prefix):
    """A restarted Redis has lost the fence counter; passing the highest
    fence the database recorded as fence_floor keeps fences increasing."""
    client = make_redis_client(private_redis.url, socket_timeout=1)
    lock = Lock(client, "p", ttl=5, prefix=prefix)
    recorded = max(lock.acquire() for _ in range(5))
    private_redis.stop()
    with pytest.raises(LockingUnavailable):
        lock.acquire()
    private_redis.start()  # no persistence: everything is gone
    other = Lock(client, "p", ttl=5, prefix=prefix)
    assert other.acquire(fence_floor=recorded) == recorded + 1
    client.close()


def test_silent_redis_semaphore_fails_within_the_socket_timeout(prefix):
    """A semaphore take against a silent server fails once, after about the
    socket timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        client = make_redis_client(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
        semaphore = Semaphore(client, "c", limit=1, ttl=5, prefix=prefix)
        started = time.monotonic()
        with pytest.raises(LockingUnavailable):
            semaphore.acquire()
        assert time.monotonic() - started < 2.0


def operations_on(client: redis.Redis, prefix: str) -> list:
    """Every operation of locking/ that talks to Redis."""
    lock = Lock(client, "p", ttl=5, prefix=prefix)
    semaphore = Semaphore(client, "c", limit=1, ttl=5, prefix=prefix)
    return [
        lock.acquire,
        lambda: lock.acquire(blocking=True, timeout=1),
        lock.release,
        lock.extend,
        lock.locked,
        lock.owner,
        lock.ttl_remaining,
        lambda: Lock.force_release(client, "p", prefix=prefix),
        lambda: Lock.current_owner(client, "p", prefix=prefix),
        lambda: list(Lock.held(client, prefix=prefix)),
        semaphore.acquire,
        lambda: semaphore.release("t"),
        lambda: semaphore.extend("t"),
        semaphore.holders,
    ]


def fill(client: redis.Redis, prefix: str, keys: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"{prefix}filler:{i}", "x")
    pipe.execute()


#: Options that make a restarted server load each key 0.5 ms late and
#: answer (LOADING) meanwhile, as a large dataset would.
SLOW_LOADING = (
    "--key-load-delay",
    "500",
    "--loading-process-events-interval-bytes",
    "1024",
)


def test_loading_redis_raises_locking_unavailable(private_redis, prefix):
    """While a restarted Redis loads its data it answers LOADING
    (BusyLoadingError): every operation raises LockingUnavailable from it,
    never a raw redis error."""
    admin = redis.Redis.from_url(private_redis.url)
    fill(admin, prefix, 12_000)  # about 6 s of loading
    private_redis.stop(keep_data=True)
    private_redis.start(*SLOW_LOADING, wait=False)
    client = make_redis_client(private_redis.url, socket_timeout=1)
    for operation in operations_on(client, prefix):
        with pytest.raises(LockingUnavailable) as info:
            operation()
        assert isinstance(info.value.__cause__, redis.BusyLoadingError)
        assert "BusyLoadingError" in str(info.value)
    with pytest.raises(redis.BusyLoadingError):
        admin.ping()  # still loading: the test saw what it meant to
    client.close()
    admin.close()


def test_read_only_redis_raises_locking_unavailable(tmp_path, prefix):
    """A server that a failover turned into a replica refuses writes
    (READONLY): every take raises LockingUnavailable from ReadOnlyError."""
    replica = PrivateRedis(str(tmp_path))
    replica.start("--replicaof", "127.0.0.1", str(free_port()))
    client = make_redis_client(replica.url, socket_timeout=1)
    try:
        for operation in (
            Lock(client, "p", ttl=5, prefix=prefix).acquire,
            lambda: Lock.force_release(client, "p", prefix=prefix),
            Semaphore(client, "c", limit=1, ttl=5, prefix=prefix).acquire,
        ):
            with pytest.raises(LockingUnavailable) as info:
                operation()
            assert isinstance(info.value.__cause__, redis.ReadOnlyError)
    finally:
        client.close()
        replica.stop()


def test_renewer_rides_out_a_redis_restart(private_redis, prefix, caplog):
    """Redis restarts (down for about 1.5 s, its data saved and loaded
    back) while a renewed lock is held: the renewals that fail with
    ConnectionError are retried, nothing is reported lost, and the lock is
    still held and renewed afterwards."""
    client = make_redis_client(private_redis.url, socket_timeout=0.5)
    lock = Lock(client, "p", ttl=4.0, prefix=prefix)
    lock.acquire()
    renewed = threading.Event()
    caplog.set_level(logging.DEBUG, logger="locking.renewal")
    with Renewer(lock=lock, interval=0.3, on_renewed=renewed.set) as renewer:
        assert renewed.wait(5)
        private_redis.stop(keep_data=True)
        time.sleep(1.5)
        private_redis.start()
        renewed.clear()
        assert renewed.wait(5)
        assert not renewer.lost.is_set()
    assert lock.owned()
    messages = [record.getMessage() for record in caplog.records]
    assert any("ConnectionError" in message for message in messages)
    assert any("succeeded again" in message for message in messages)
    client.close()


def test_renewer_rides_out_redis_loading_its_data(private_redis, prefix, caplog):
    """After a restart Redis answers LOADING for about 1.5 s: the renewer
    retries through it and the lock is kept."""
    admin = redis.Redis.from_url(private_redis.url)
    fill(admin, prefix, 3000)
    client = make_redis_client(private_redis.url, socket_timeout=0.5)
    lock = Lock(client, "p", ttl=5.0, prefix=prefix)
    lock.acquire()
    renewed = threading.Event()
    caplog.set_level(logging.DEBUG, logger="locking.renewal")
    with Renewer(lock=lock, interval=0.3, on_renewed=renewed.set) as renewer:
        assert renewed.wait(5)
        private_redis.stop(keep_data=True)
        private_redis.start(*SLOW_LOADING)  # returns once loaded
        renewed.clear()
        assert renewed.wait(5)
        assert not renewer.lost.is_set()
    assert lock.owned()
    messages = [record.getMessage() for record in caplog.records]
    assert any("BusyLoadingError" in message for message in messages)
    client.close()
    admin.close()


def test_renewer_reports_loss_when_redis_returns_past_the_lease(private_redis, prefix):
    """Redis away for longer than the lease: the loss is reported once the
    lease has run out, before Redis is back, saying Redis was
    unreachable."""
    client = make_redis_client(private_redis.url, socket_timeout=0.2)
    lock = Lock(client, "p", ttl=1.0, prefix=prefix)
    lock.acquire()
    renewed = threading.Event()
    calls: list[str] = []
    with Renewer(
        lock=lock, interval=0.2, on_renewed=renewed.set, on_lost=calls.append
    ) as renewer:
        assert renewed.wait(5)
        private_redis.stop(keep_data=True)
        stopped = time.monotonic()
        assert renewer.lost.wait(5)
        assert 0.5 < time.monotonic() - stopped < 3
        private_redis.start()
    assert calls == [renewer.lost_reason]
    assert "Redis unreachable" in renewer.lost_reason
    client.close()


def test_renewer_reports_a_lock_lost_in_a_restart(private_redis, prefix):
    """Redis comes back quickly but without its data: the lock is gone, and
    that is reported as a lost lock (not as Redis unreachable)."""
    client = make_redis_client(private_redis.url, socket_timeout=0.5)
    lock = Lock(client, "p", ttl=4.0, prefix=prefix)
    lock.acquire()
    renewed = threading.Event()
    with Renewer(lock=lock, interval=0.3, on_renewed=renewed.set) as renewer:
        assert renewed.wait(5)
        private_redis.stop()
        private_redis.start()
        assert renewer.lost.wait(3)
    assert "lock 'p' lost" in renewer.lost_reason
    client.close()
