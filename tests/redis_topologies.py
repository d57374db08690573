"""Private Redis topologies on loopback: a three-node Cluster, and a master
with a replica watched by three sentinels.

Every server is a process of the test's own on free ports, stopped
afterwards (even when one fails to start); the shared Redis is never
touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from tests.locking.conftest import PrivateRedis, free_port


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


@contextmanager
def local_cluster(make_dir) -> Iterator[tuple[RedisCluster, list[PrivateRedis]]]:
    """Start three cluster nodes (``make_dir()`` gives each a folder), join
    them with ``redis-cli --cluster create`` and yield a client and the
    nodes."""
    nodes = []
    try:
        for _ in range(3):
            folder = str(make_dir())
            node = PrivateRedis(folder)
            node.port = cluster_port()
            node.url = f"redis://127.0.0.1:{node.port}/0"
            nodes.append(node)  # stopped afterwards, even if it fails to start
            node.start(
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(folder, "nodes.conf"),
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
        try:
            yield client, nodes
        finally:
            client.close()
    finally:
        for node in nodes:
            node.stop()


def _pairs(reply: list) -> dict:
    """A flat ``[name, value, ...]`` reply as a dict."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


class SentinelGroup:
    """A master, one replica and three sentinels that fail the master over
    one second after it stops answering (``down-after-milliseconds``)."""

    MASTER = "mymaster"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.servers: list[PrivateRedis] = []
        self.sentinels: list[subprocess.Popen] = []
        self.sentinel_ports: list[int] = []

    @property
    def url(self) -> str:
        """The product's ``sentinel://`` URL of this group (database 0)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"sentinel://{hosts}/{self.MASTER}/0"

    def start(self) -> SentinelGroup:
        for name in ("a", "b"):
            folder = self.folder / name
            folder.mkdir(parents=True, exist_ok=True)
            self.servers.append(PrivateRedis(str(folder)))
        master, replica = self.servers
        master.start()
        replica.start("--replicaof", "127.0.0.1", str(master.port))
        for index in range(3):
            port = free_port()
            config = self.folder / f"sentinel-{index}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                f"sentinel failover-timeout {self.MASTER} 5000\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n"
            )
            self.sentinel_ports.append(port)
            self.sentinels.append(
                subprocess.Popen(
                    [shutil.which("redis-server"), str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.wait_for(
            lambda: all(self._sees_replica(port) for port in self.sentinel_ports),
            "the sentinels did not find the master and its replica",
        )
        return self

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1, decode_responses=True)

    def _ask(self, port: int, *args: str):
        client = self._sentinel(port)
        try:
            return client.execute_command("SENTINEL", *args)
        finally:
            client.close()

    def _sees_replica(self, port: int) -> bool:
        """Whether the sentinel on ``port`` knows its two peers and a
        healthy replica of the master (so that it can fail over)."""
        try:
            master = _pairs(self._ask(port, "MASTER", self.MASTER))
            replicas = [_pairs(r) for r in self._ask(port, "REPLICAS", self.MASTER)]
        except redis.RedisError:
            return False
        return int(master.get("num-other-sentinels", 0)) >= 2 and any(
            "s_down" not in r.get("flags", "") and r.get("master-link-status") == "ok"
            for r in replicas
        )

    def _masters_seen(self) -> list[int | None]:
        """The master's port as each sentinel reports it (None: no answer)."""
        seen = []
        for port in self.sentinel_ports:
            try:
                _host, master = self._ask(port, "GET-MASTER-ADDR-BY-NAME", self.MASTER)
                seen.append(int(master))
            except (redis.RedisError, TypeError, ValueError):
                seen.append(None)
        return seen

    def master_port(self) -> int | None:
        """The master's port as the sentinels' majority reports it."""
        seen = [port for port in self._masters_seen() if port is not None]
        for candidate in set(seen):
            if seen.count(candidate) >= 2:
                return candidate
        return None

    def server(self, port: int) -> PrivateRedis:
        return next(s for s in self.servers if s.port == port)

    def failover(self, *, kill: bool, timeout: float = 30) -> float:
        """Move the master to the other server and return how long the
        sentinels took: with ``kill`` the master process is killed (its
        data gone; it comes back as a replica of the new master), without,
        ``SENTINEL FAILOVER`` hands over."""
        before = self.master_port()
        started = time.monotonic()
        if kill:
            old = self.server(before)
            old.stop()
        else:
            self._ask(self.sentinel_ports[0], "FAILOVER", self.MASTER)
        self.wait_for(
            lambda: self.master_port() not in (None, before),
            "the sentinels did not fail the master over",
            timeout=timeout,
        )
        took = time.monotonic() - started
        if kill:
            # The old master restarts empty, as a replica of the new one, but
            # only once every sentinel knows the new master: a sentinel that
            # still took the old one for the master would turn it back into
            # one (empty) when it reappears, and clients asking that
            # sentinel would take locks there.
            new = self.master_port()
            self.wait_for(
                lambda: self._masters_seen() == [new] * len(self.sentinel_ports),
                "the sentinels did not agree on the new master",
                timeout=timeout,
            )
            old.start("--replicaof", "127.0.0.1", str(new))
        self.wait_for(
            lambda: all(self._sees_replica(port) for port in self.sentinel_ports),
            "the group did not get its replica back",
            timeout=timeout,
        )
        return took

    @staticmethod
    def wait_for(predicate, message: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(message)
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(10)
        for server in self.servers:
            server.stop()


@contextmanager
def sentinel_group(folder: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(folder)
    try:
        yield group.start()
    finally:
        group.stop()
