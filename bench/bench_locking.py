"""
Throughput and handover latency of locking.Lock and locking.Semaphore.

Take+release pairs per second, single client, for: a raw ``SET NX PX`` plus
a Lua compare-and-delete (the floor any Redis lock pays), redis-py's
``Lock``, ``locking.Lock`` and ``locking.Semaphore``. Candidates run in
interleaved rounds, so a noisy neighbour hurts every candidate alike; the
ratios use each candidate's best round (the least disturbed one), and the
median round is shown beside it. Then the handover latency of a blocking
``locking.Lock`` between two processes: from the holder's release to the
waiter's acquire returning.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import redis
from redis.lock import Lock as RedisPyLock

from locking import Lock, Semaphore, make_redis_client

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
ROUNDS = 7
ROUND_SECONDS = 0.4
HANDOVERS = 200

RAW_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

GOALS = [
    ("ours / raw", "locking.Lock", "raw SET NX + Lua", 0.8),
    ("ours / redis-py", "locking.Lock", "redis-py Lock", 1.0),
    ("semaphore / raw", "locking.Semaphore", "raw SET NX + Lua", 0.5),
]


def raw_pair(client: redis.Redis, prefix: str) -> Callable[[], None]:
    key, token = f"{prefix}raw", uuid.uuid4().hex
    release = client.register_script(RAW_RELEASE_SCRIPT)

    def pair() -> None:
        assert client.set(key, token, nx=True, px=10_000)
        assert release(keys=[key], args=[token])

    return pair


def redis_py_pair(client: redis.Redis, prefix: str) -> Callable[[], None]:
    lock = RedisPyLock(client, f"{prefix}redis-py", timeout=10)

    def pair() -> None:
        assert lock.acquire(blocking=False)
        lock.release()

    return pair


def ours_pair(client: redis.Redis, prefix: str) -> Callable[[], None]:
    lock = Lock(client, "ours", ttl=10, prefix=prefix)

    def pair() -> None:
        assert lock.acquire() is not None
        assert lock.release()

    return pair


def semaphore_pair(client: redis.Redis, prefix: str) -> Callable[[], None]:
    semaphore = Semaphore(client, "sem", limit=4, ttl=10, prefix=prefix)

    def pair() -> None:
        token = semaphore.acquire()
        assert token is not None
        assert semaphore.release(token)

    return pair


CANDIDATES = [
    ("raw SET NX + Lua", raw_pair),
    ("redis-py Lock", redis_py_pair),
    ("locking.Lock", ours_pair),
    ("locking.Semaphore", semaphore_pair),
]


def rate(pair: Callable[[], None], seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            pair()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def measure_throughput(
    client: redis.Redis, prefix: str
) -> dict[str, tuple[float, float]]:
    """Return (best, median) pairs per second of each candidate."""
    pairs = {name: make(client, prefix) for name, make in CANDIDATES}
    for pair in pairs.values():  # warm up: scripts loaded, connection open
        rate(pair, 0.05)
    rounds: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(ROUNDS):
        for name, pair in pairs.items():
            rounds[name].append(rate(pair, ROUND_SECONDS))
    return {
        name: (max(values), statistics.median(values))
        for name, values in rounds.items()
    }


def _handover_waiter(url: str, prefix: str, conn) -> None:
    client = make_redis_client(url)
    lock = Lock(client, "handover", ttl=10, prefix=prefix)
    while conn.recv():
        lock.acquire(blocking=True, timeout=10)
        acquired_at = time.monotonic()
        lock.release()
        conn.send(acquired_at)
    client.close()


def measure_handover(client: redis.Redis, prefix: str) -> list[float]:
    """The holder takes the lock, lets the waiter block on it, releases, and
    the waiter reports when its acquire returned (CLOCK_MONOTONIC is shared
    by all processes of the host)."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    waiter = context.Process(target=_handover_waiter, args=(REDIS_URL, prefix, there))
    waiter.start()
    lock = Lock(client, "handover", ttl=10, prefix=prefix)
    latencies = []
    try:
        for _ in range(HANDOVERS):
            while lock.acquire() is None:  # the waiter may still be releasing
                time.sleep(0.0005)
            here.send(True)
            time.sleep(0.003)  # let the waiter block on the lock
            released_at = time.monotonic()
            lock.release()
            latencies.append(here.recv() - released_at)
    finally:
        here.send(False)
        waiter.join(10)
    return latencies


def main() -> int:
    client = make_redis_client(REDIS_URL)
    prefix = f"bench-locking:{uuid.uuid4().hex}:"
    try:
        rates = measure_throughput(client, prefix)
        latencies = measure_handover(client, prefix)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()

    best = {name: value[0] for name, value in rates.items()}
    raw, redis_py = best["raw SET NX + Lua"], best["redis-py Lock"]
    print(f"take+release pairs per second, {ROUNDS} interleaved rounds")
    print(
        f"{'candidate':<20} {'best':>8} {'median':>8} {'vs raw':>8} {'vs redis-py':>12}"
    )
    for name, (top, median) in rates.items():
        print(
            f"{name:<20} {top:>8.0f} {median:>8.0f} {top / raw:>7.2f}x "
            f"{top / redis_py:>11.2f}x"
        )
    latencies.sort()
    median_ms = statistics.median(latencies) * 1000
    p95_ms = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(
        f"\nblocking handover between two processes ({len(latencies)} runs): "
        f"median {median_ms:.2f} ms, p95 {p95_ms:.2f} ms, "
        f"max {latencies[-1] * 1000:.2f} ms"
    )
    print("\ngoals")
    failed = 0
    for label, ours, theirs, target in GOALS:
        ratio = best[ours] / best[theirs]
        ok = ratio >= target
        failed += not ok
        print(f"  {label:<18} {ratio:.2f}x >= {target}x  {'PASS' if ok else 'FAIL'}")
    ok = median_ms < 10
    failed += not ok
    print(
        f"  {'handover median':<18} {median_ms:.2f} ms < 10 ms  "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
