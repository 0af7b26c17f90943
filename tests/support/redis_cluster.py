"""Real Redis topologies for tests: a 3-master Redis Cluster and a Sentinel set (master, replica,
three sentinels), each a handful of private redis-server processes on loopback ports.

Nothing here touches the shared Redis on 6379; stop() kills every process it started.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port P whose cluster bus port P + 10000 is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair")


def wait_until(check, timeout: float, what: str, interval: float = 0.1):
    """check()'s first truthy value within timeout, else AssertionError naming what."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class _Processes:
    """redis-server processes of one topology, started in a directory of their own."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.procs: dict[int, subprocess.Popen] = {}

    def spawn(self, port: int, *args: str) -> None:
        log = open(self.root / f"redis-{port}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[port] = subprocess.Popen(
            [REDIS_SERVER, *args],
            cwd=self.root,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def kill(self, port: int) -> None:
        """SIGKILL one server (its data is gone: nothing is saved to disk)."""
        proc = self.procs.get(port)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Kill every process."""
        for port in list(self.procs):
            self.kill(port)


def _ping(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


class RedisClusterProcs:
    """Three cluster-enabled masters (no replicas) joined by `redis-cli --cluster create`."""

    def __init__(self, root: Path, masters: int = 3) -> None:
        self.procs = _Processes(root)
        self.ports = [free_port_pair() for _ in range(masters)]

    @property
    def url(self) -> str:
        """Seed URL (any one node: the client discovers the rest)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisClusterProcs:
        """Start the nodes, create the cluster and wait for cluster_state:ok on every node."""
        for port in self.ports:
            self.procs.spawn(
                port,
                "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "2000",
                "--save", "", "--appendonly", "no",
            )  # fmt: skip
        for port in self.ports:
            wait_until(lambda port=port: _ping(port), 10, f"cluster node {port}")
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        create = [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0"]
        subprocess.run([*create, "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in self.ports:
            wait_until(lambda port=port: self._state_ok(port), 30, f"cluster_state:ok on {port}")
        return self

    @staticmethod
    def _state_ok(port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            info = client.execute_command("CLUSTER", "INFO").decode()
        finally:
            client.close()
        return "cluster_state:ok" in info

    def client(self) -> redis.RedisCluster:
        """A (synchronous) cluster client."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0])

    def node_client(self, port: int) -> redis.Redis:
        """A plain client of one node (sees only that node's keys)."""
        return redis.Redis(port=port)

    def stop(self) -> None:
        """Kill every node."""
        self.procs.stop()


class SentinelSet:
    """One master, one replica (--replicaof) and three sentinels watching them."""

    def __init__(self, root: Path, master_name: str = "vmaster") -> None:
        self.procs = _Processes(root)
        self.root = Path(root)
        self.master_name = master_name
        self.data_ports = [free_port_pair(), free_port_pair()]
        self.sentinel_ports = [free_port_pair() for _ in range(3)]

    @property
    def sentinels(self) -> str:
        """VASSET_REDIS_SENTINELS for this set."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        """The VASSET_REDIS_* variables of a vasset that uses this set."""
        return {
            "VASSET_REDIS_MODE": "sentinel",
            "VASSET_REDIS_SENTINELS": self.sentinels,
            "VASSET_REDIS_SENTINEL_MASTER": self.master_name,
            # Only the database number and credentials are read from the URL in sentinel mode.
            "VASSET_REDIS_URL": "redis://127.0.0.1:1/0",
        }

    def start(self) -> SentinelSet:
        """Start master and replica, then the sentinels; wait until they see each other."""
        master, replica = self.data_ports
        common = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        self.procs.spawn(master, "--port", str(master), *common)
        self.procs.spawn(replica, "--port", str(replica), "--replicaof", "127.0.0.1", str(master),
                         *common)  # fmt: skip
        for port in self.sentinel_ports:
            conf = self.root / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 3000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            self.procs.spawn(port, str(conf), "--sentinel")
        wait_until(lambda: self._replica_synced(master, replica), 20, "replica in sync")
        for port in self.sentinel_ports:
            wait_until(lambda port=port: self._sentinel_ready(port), 30, f"sentinel {port} ready")
        return self

    @staticmethod
    def _replica_synced(master: int, replica: int) -> bool:
        client = redis.Redis(port=replica, socket_timeout=1)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def _sentinel_ready(self, port: int) -> bool:
        client = self._sentinel(port)
        try:
            master = client.sentinel_master(self.master_name)
            replicas = client.sentinel_slaves(self.master_name)
        finally:
            client.close()
        healthy = [r for r in replicas if not r.get("is_sdown") and not r.get("is_odown")]
        return int(master.get("num-other-sentinels", 0)) >= 2 and len(healthy) >= 1

    def master_port(self) -> int:
        """The port Sentinel names as master right now."""
        client = self._sentinel(self.sentinel_ports[0])
        try:
            _, port = client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
            )
        finally:
            client.close()
        return int(port)

    def failover(self, timeout: float = 30) -> int:
        """SENTINEL FAILOVER and wait until the replica is the master; returns the new port."""
        for port in self.sentinel_ports:
            wait_until(lambda port=port: self._sentinel_ready(port), timeout, "sentinels ready")
        old = self.master_port()
        client = self._sentinel(self.sentinel_ports[0])
        try:
            client.execute_command("SENTINEL", "FAILOVER", self.master_name)
        finally:
            client.close()
        new = wait_until(
            lambda: (p := self.master_port()) != old and self._is_master(p) and p,
            timeout,
            "the failover",
        )
        # The old master comes back as a replica of the new one (the next failover needs it).
        wait_until(lambda: self._replica_synced(new, old), timeout, "old master re-synced")
        return int(new)

    @staticmethod
    def _is_master(port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            return client.info("replication").get("role") == "master"
        finally:
            client.close()

    def master_client(self) -> redis.Redis:
        """A plain client of the current master."""
        return redis.Redis(port=self.master_port())

    def stop(self) -> None:
        """Kill every server and sentinel."""
        self.procs.stop()
