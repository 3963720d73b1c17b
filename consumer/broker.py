"""A real Apache Kafka cluster on loopback, started from Maven Central jars.

KRaft combined broker+controller nodes on 127.0.0.1: one node, or three (replication factor 3,
`min.insync.replicas=2`) for failover tests. The data directory holds everything of a cluster:
`cluster.json` (its layout and cluster id), `pids.json` (the processes `start` launched), and
per node its `server.properties`, storage and log files. `stop` signals only recorded processes
whose command line names that node's properties file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
from confluent_kafka import KafkaException

from .broker_security import ADMIN, PROTOCOL, ListenerSecurity, SecurityFiles, write_private
from .broker_settings import BrokerSettings
from .errors import BrokerError
from .jars import ensure_jars, find_java
from .topics import admin_client

HOST = "127.0.0.1"

_LOG4J = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


@dataclass(frozen=True)
class Node:
    """One KRaft node of the cluster and where its files are."""

    node_id: int
    port: int
    controller_port: int
    dir: Path

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    @property
    def storage(self) -> Path:
        return self.dir / "data"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class NodeStatus:
    node: Node
    pid: int | None
    alive: bool


@dataclass(frozen=True)
class StartResult:
    bootstrap: str
    already_running: bool
    started: tuple[int, ...]
    seconds: float


def server_properties(
    node: Node,
    voters: str,
    nodes: int,
    extra: Mapping[str, str],
    security: ListenerSecurity | None = None,
) -> str:
    """The `server.properties` of one node. Pure: the tests read it. With `security`, the
    client listener is SASL_SSL and ACLs are enforced."""
    replication = min(nodes, 3)
    min_isr = 2 if nodes >= 3 else 1
    client = PROTOCOL if security is not None else "PLAINTEXT"
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"{client}://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"{client}://{HOST}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"{client}:{client},CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": client,
        "log.dirs": str(node.storage),
        # Topics are created on purpose (`packflow topics create`), so a typo fails loudly.
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(replication),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "12",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": str(min_isr),
        "transaction.state.log.num.partitions": "12",
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        # A local cluster serves tests and demos: rebalance at once.
        "group.initial.rebalance.delay.ms": "0",
        "unclean.leader.election.enable": "false",
    }
    if security is not None:
        props.update(security.properties())
    props.update(extra)
    return "".join(f"{key}={value}\n" for key, value in props.items())


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka's tools would read it as an option
            return cid


def port_in_use(port: int) -> bool:
    """True when something listens on HOST:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def free_port_block(size: int, tries: int = 200) -> int:
    """The first of `size` consecutive free loopback ports, below the kernel's ephemeral range:
    a port inside it can be taken by any outgoing connection (one node dialling another, say)
    between this check and the broker's bind."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    top = low - size if low - size > 12000 else 65000 - size  # an unusually low range
    for _ in range(tries):
        base = random.randint(10000, top)
        if not any(port_in_use(p) for p in range(base, base + size)):
            return base
    raise BrokerError(f"no {size} consecutive free ports found on {HOST}")


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class LocalCluster:
    """Start, stop and inspect the local cluster in `settings.data_dir`.

    Constructing one touches neither the network nor the disk; `start()` does.
    """

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.settings = settings or BrokerSettings()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- layout -------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def exists(self) -> bool:
        """True once `start` has laid out a cluster in the data directory."""
        return (self.data_dir / "cluster.json").is_file()

    def _layout(self) -> dict[str, object] | None:
        path = self.data_dir / "cluster.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def nodes(self) -> list[Node]:
        """The nodes of the cluster in the data directory (its recorded layout wins)."""
        layout = self._layout() or {}
        count = int(str(layout.get("nodes", self.settings.nodes)))
        port = int(str(layout.get("port", self.settings.port)))
        cport = int(str(layout.get("controller_port", self.settings.controller_port)))
        return [Node(i, port + i, cport + i, self.data_dir / f"node-{i}") for i in range(count)]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes())

    @property
    def secure(self) -> bool:
        """Whether the cluster serves SASL_SSL (its recorded layout wins over the settings)."""
        layout = self._layout()
        return bool(layout.get("secure", False) if layout else self.settings.secure)

    @property
    def security(self) -> SecurityFiles:
        """Where a secured cluster keeps its CA certificate and password files."""
        return SecurityFiles(self.data_dir)

    def client_config(self, user: str = ADMIN) -> dict[str, str]:
        """librdkafka settings of a client of this cluster: the bootstrap servers, and for a
        secured one the SASL_SSL login of `user` (`admin`, or the application user
        `packflow`), password included: never print them unredacted."""
        if not self.secure:
            return {"bootstrap.servers": self.bootstrap}
        return self.security.client_config(self.bootstrap, user)

    # -- processes ----------------------------------------------------------------------

    def _pids(self) -> dict[int, int]:
        path = self.data_dir / "pids.json"
        if not path.is_file():
            return {}
        return {int(k): int(v) for k, v in json.loads(path.read_text()).items()}

    def _write_pids(self, pids: Mapping[int, int]) -> None:
        (self.data_dir / "pids.json").write_text(json.dumps({str(k): v for k, v in pids.items()}))

    def _process(self, node: Node, pid: int | None) -> psutil.Process | None:
        """The live process `pid` if it is this node's broker, else None."""
        if pid is None:
            return None
        child = self._children.get(node.node_id)
        ours = child is not None and child.pid == pid
        if ours and child.poll() is not None:  # type: ignore[union-attr]
            return None  # our own child exited (poll() also reaps it)
        try:
            proc = psutil.Process(pid)
            if ours:
                # Alive and ours: right after the fork its command line is still Python's
                # (on a loaded machine, for a while), so it is not checked.
                return proc
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if str(node.properties) not in proc.cmdline():
                return None  # the pid was reused by something that is not ours
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def status(self) -> list[NodeStatus]:
        pids = self._pids()
        result = []
        for node in self.nodes():
            pid = pids.get(node.node_id)
            result.append(NodeStatus(node, pid, self._process(node, pid) is not None))
        return result

    def is_running(self) -> bool:
        states = self.status()
        return bool(states) and all(s.alive for s in states)

    # -- start --------------------------------------------------------------------------

    def start(self) -> StartResult:
        """Start every node that is not running and wait until the cluster serves metadata."""
        began = time.monotonic()
        self._check_layout()
        states = self.status()
        if self.exists() and all(s.alive for s in states):
            return StartResult(self.bootstrap, True, (), 0.0)
        java = find_java()
        libs = ensure_jars(self.settings.home, self.settings.version, self.settings.mvn)
        todo = [s.node for s in states if not s.alive]
        for node in todo:
            for port in (node.port, node.controller_port):
                if port_in_use(port):
                    raise BrokerError(
                        f"port {port} on {HOST} is in use by another process (node {node.node_id}"
                        f" of the local cluster needs it); free it or choose --port/--controller-port"
                    )
        self._prepare(java, libs)
        pids = {s.node.node_id: s.pid for s in states if s.alive and s.pid is not None}
        for node in todo:
            pids[node.node_id] = self._spawn(java, libs, node)
        self._write_pids(pids)
        try:
            self._wait_ready(todo)
        except BrokerError:
            self._kill(todo)
            raise
        return StartResult(
            self.bootstrap, False, tuple(n.node_id for n in todo), time.monotonic() - began
        )

    def _check_layout(self) -> None:
        layout = self._layout()
        if layout is None:
            return
        wanted = {
            "nodes": self.settings.nodes,
            "port": self.settings.port,
            "controller_port": self.settings.controller_port,
            "secure": self.settings.secure,
        }
        found_layout = {"secure": False, **layout}  # clusters made before secure mode
        differs = {k: found_layout.get(k) for k, v in wanted.items() if found_layout.get(k) != v}
        if differs:
            found = ", ".join(f"{k}={v}" for k, v in differs.items())
            raise BrokerError(
                f"{self.data_dir} holds a cluster with {found}; start it with those settings, "
                "use another --data-dir, or `packflow kafka stop --delete-data` first"
            )

    def _prepare(self, java: str, libs: Path) -> None:
        """Write configuration files and format the storage of nodes that lack it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        layout = self._layout()
        if layout is None:
            layout = {
                "cluster_id": new_cluster_id(),
                "nodes": self.settings.nodes,
                "port": self.settings.port,
                "controller_port": self.settings.controller_port,
                "version": self.settings.version,
            }
            if self.settings.secure:
                layout["secure"] = True
            (self.data_dir / "cluster.json").write_text(json.dumps(layout, indent=2))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J)
        security = None
        if self.secure:
            self.security.ensure(java)
            security = self.security.listener()
        nodes = self.nodes()
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)
        for node in nodes:
            node.log_dir.mkdir(parents=True, exist_ok=True)
            props = server_properties(
                node, voters, len(nodes), self.settings.broker_config, security
            )
            if security is None:
                node.properties.write_text(props)
            else:
                write_private(node.properties, props)  # it holds the admin's password
            if not (node.storage / "meta.properties").is_file():
                self._format(java, libs, node, str(layout["cluster_id"]))

    def _java_cmd(self, java: str, libs: Path, node: Node, *main: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.settings.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.log_dir}",
            "-cp",
            f"{libs}/*",
            *main,
        ]

    def _format(self, java: str, libs: Path, node: Node, cluster_id: str) -> None:
        cmd = self._java_cmd(
            java,
            libs,
            node,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node.properties),
            # The SCRAM users exist from the first start: the brokers log in as admin.
            *(self.security.scram_arguments() if self.secure else []),
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip()
            last = output.splitlines()[-1] if output else f"exit code {proc.returncode}"
            raise BrokerError(
                f"formatting the storage of node {node.node_id} failed: {last}", detail=output
            )

    def _spawn(self, java: str, libs: Path, node: Node) -> int:
        cmd = self._java_cmd(java, libs, node, "kafka.Kafka", str(node.properties))
        with open(node.log_dir / "stdout.log", "ab") as out:
            # A session of its own: the broker outlives the CLI and ignores its Ctrl-C.
            child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=node.dir,
                start_new_session=True,
            )
        self._children[node.node_id] = child
        return child.pid

    def _wait_ready(self, started: Iterable[Node]) -> None:
        started = list(started)
        deadline = time.monotonic() + self.settings.start_timeout_s
        nodes = self.nodes()
        pids = self._pids()
        while time.monotonic() < deadline:
            for node in started:
                if self._process(node, pids.get(node.node_id)) is None:
                    # Reap it: psutil can see the exit (a zombie) before poll() did, and
                    # returncode is None until the child is reaped.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._children[node.node_id].wait(5)
                    code = self._children[node.node_id].returncode
                    raise BrokerError(
                        f"Kafka node {node.node_id} exited during start (exit code {code}); "
                        f"last lines of {node.log_dir / 'server.log'}:",
                        detail=log_tail(node.log_dir / "server.log")
                        + "\n"
                        + log_tail(node.log_dir / "stdout.log", 5),
                    )
            if all(self._accepts(node.port) for node in nodes) and self._serves_metadata(
                len(nodes)
            ):
                return
            time.sleep(0.2)
        raise BrokerError(
            f"Kafka did not serve metadata within {self.settings.start_timeout_s:g}s; "
            f"last lines of {started[0].log_dir / 'server.log'}:",
            detail=log_tail(started[0].log_dir / "server.log"),
        )

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _serves_metadata(self, brokers: int) -> bool:
        try:
            metadata = admin_client(self.bootstrap, self.client_config()).list_topics(timeout=2)
        except KafkaException:
            return False
        return len(metadata.brokers) >= brokers

    # -- stop ---------------------------------------------------------------------------

    def stop(self, delete_data: bool = False) -> list[int]:
        """Stop the recorded broker processes (TERM, then KILL after the grace period).

        Returns the pids that were signalled. With `delete_data`, the data dir is removed too.
        """
        procs = [p for s in self.status() if (p := self._process(s.node, s.pid)) is not None]
        stopped = [p.pid for p in procs]
        self._terminate(procs)
        (self.data_dir / "pids.json").unlink(missing_ok=True)
        if delete_data and self.exists():
            shutil.rmtree(self.data_dir)
        return stopped

    def kill_node(self, node_id: int) -> int:
        """SIGKILL one node (failover tests); returns its pid."""
        node = self.nodes()[node_id]
        proc = self._process(node, self._pids().get(node_id))
        if proc is None:
            raise BrokerError(f"node {node_id} is not running")
        proc.kill()
        psutil.wait_procs([proc], timeout=10)
        child = self._children.get(node_id)
        if child is not None:
            child.wait(timeout=10)
        return proc.pid

    def _kill(self, nodes: Iterable[Node]) -> None:
        pids = self._pids()
        procs = [p for n in nodes if (p := self._process(n, pids.get(n.node_id))) is not None]
        self._terminate(procs, grace=0)

    def _terminate(self, procs: list[psutil.Process], grace: float | None = None) -> None:
        grace = self.settings.stop_timeout_s if grace is None else grace
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace) if grace else ([], procs)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        pids = {proc.pid for proc in procs}
        for child in self._children.values():
            if child.pid in pids:
                child.wait(timeout=10)  # reap our own children so no zombie looks alive
