"""Fixtures for the locking tests: real Redis, never mocks, no Django."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from locking import Lock, make_redis_client

#: DB 13 of the shared server; other suites use 14 and 15. Tests never
#: flush it: each test works under its own random key prefix.
REDIS_URL = os.environ.get("LOCKING_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = make_redis_client(REDIS_URL, socket_timeout=5.0)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    value = f"test-locking:{uuid.uuid4().hex}:"
    yield value
    keys = list(redis_client.scan_iter(match=f"{value}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def make_lock(redis_client: redis.Redis, prefix: str):
    """Build Locks under the test's prefix (name "project:1", ttl 10 s
    unless told otherwise)."""

    def make(name: str = "project:1", ttl: float = 10, **kwargs) -> Lock:
        return Lock(redis_client, name, ttl=ttl, prefix=prefix, **kwargs)

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, which it may stop, restart or
    flush without disturbing anybody else. Nothing is persisted unless a
    test stops it with ``keep_data=True``."""

    def __init__(self, tmp_path: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *options: str, wait: bool = True) -> None:
        """Start the server (with extra command-line ``options``) and, with
        ``wait``, return once it answers (it has loaded any saved data)."""
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.BusyLoadingError:
                if not wait:
                    break  # it listens: the caller wants it loading
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self, *, keep_data: bool = False) -> None:
        """Stop the server: killed, with its data gone, or with
        ``keep_data`` shut down after saving it, so that the next start
        loads it back (a restart, as production Redis with RDB does)."""
        if self.process is None:
            return
        if keep_data:
            client = redis.Redis.from_url(self.url, socket_timeout=5)
            client.shutdown(save=True)
            client.close()
        else:
            self.process.kill()
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.dir, "dump.rdb"))
        self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = PrivateRedis(str(tmp_path))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mp_context() -> multiprocessing.context.BaseContext:
    """Child processes come from a fork server that has preloaded the
    workers: cheap to start, and never a fork of the threaded test process."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.locking.workers"])
    return context
