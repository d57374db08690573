"""Code run in child processes by the contention and failure tests."""

from __future__ import annotations

import json
import os
import random
import time

from locking import Lock, Renewer, Semaphore, make_redis_client


def lock_storm(url: str, prefix: str, name: str, iterations: int) -> None:
    """Take and release one lock ``iterations`` times; a witness counter
    proves nobody else was inside the critical section meanwhile."""
    client = make_redis_client(url, socket_timeout=10)
    lock = Lock(client, name, ttl=10, prefix=prefix)
    witness, last_fence, fences, overlaps = (
        f"{prefix}witness",
        f"{prefix}last-fence",
        f"{prefix}fences",
        f"{prefix}overlaps",
    )
    for _ in range(iterations):
        fence = lock.acquire(blocking=True, timeout=60)
        assert fence is not None
        pipe = client.pipeline(transaction=False)
        pipe.incr(witness)
        pipe.getset(last_fence, fence)
        pipe.rpush(fences, fence)
        inside, previous, _ = pipe.execute()
        if inside != 1 or (previous is not None and int(previous) >= fence):
            client.incr(overlaps)
        if client.decr(witness) != 0:
            client.incr(overlaps)
        if not lock.release():
            client.incr(overlaps)
    client.close()


def semaphore_storm(
    url: str, prefix: str, name: str, limit: int, iterations: int
) -> None:
    """Take and release a lease ``iterations`` times, trying again after a
    short random sleep while every slot is held (a take never waits; the
    sleep keeps 32 pollers from saturating Redis), recording how many
    holders were inside at once."""
    client = make_redis_client(url, socket_timeout=10)
    semaphore = Semaphore(client, name, limit=limit, ttl=10, prefix=prefix)
    witness, peak, overlaps = (
        f"{prefix}witness",
        f"{prefix}peak",
        f"{prefix}overlaps",
    )
    for _ in range(iterations):
        deadline = time.monotonic() + 60
        while (token := semaphore.acquire()) is None:
            assert time.monotonic() < deadline
            time.sleep(0.005 + random.random() * 0.01)
        inside = client.incr(witness)
        if inside > limit:
            client.incr(overlaps)
        # Record the highest count seen (a max, done atomically).
        client.eval(
            "if tonumber(redis.call('get', KEYS[1]) or '0') < tonumber(ARGV[1]) "
            "then redis.call('set', KEYS[1], ARGV[1]) end",
            1,
            peak,
            inside,
        )
        client.decr(witness)
        if not semaphore.release(token):
            client.incr(overlaps)
    client.close()


def hold_lock(url: str, prefix: str, name: str, ttl: float) -> None:
    """Take a lock, say so, then sleep until killed."""
    client = make_redis_client(url)
    lock = Lock(client, name, ttl=ttl, prefix=prefix)
    fence = lock.acquire()
    client.rpush(f"{prefix}ready", json.dumps({"pid": os.getpid(), "fence": fence}))
    time.sleep(60)


def hold_lease(url: str, prefix: str, name: str, ttl: float) -> None:
    """Take a semaphore lease, say so, then sleep until killed."""
    client = make_redis_client(url)
    semaphore = Semaphore(client, name, limit=1, ttl=ttl, prefix=prefix)
    token = semaphore.acquire()
    client.rpush(f"{prefix}ready", json.dumps({"token": token}))
    time.sleep(60)


def hold_renewed_lock(url: str, prefix: str, name: str, ttl: float) -> None:
    """Take a lock with a renewer; once the renewer reports the loss (after
    the parent paused and resumed this process), report what the old holder
    can still do."""
    client = make_redis_client(url)
    lock = Lock(client, name, ttl=ttl, prefix=prefix)
    fence = lock.acquire()
    reasons: list[str] = []
    renewer = Renewer(lock=lock, on_lost=reasons.append).start()
    client.rpush(f"{prefix}ready", json.dumps({"fence": fence}))
    lost = renewer.lost.wait(30)
    result = {
        "fence": fence,
        "lost": lost,
        "reason": renewer.lost_reason,
        "on_lost_calls": reasons,
        "extend": lock.extend(),
        "release": lock.release(),
    }
    renewer.stop()
    client.rpush(f"{prefix}result", json.dumps(result))
