"""A real single-node KRaft Apache Kafka broker, assembled from Maven Central jars.

For machines without Docker (our CI among them): `seatledger kafka start|stop|status` and the test
session fixture use it. See docs/running.md for the layout on disk and the commands.

- Jars: `org.apache.kafka:kafka_2.13` plus the log4j2 binding for SLF4J 1.7, resolved with Maven
  once per Kafka version into ~/.cache/seatledger/kafka-<version>/libs, marked complete only after
  the copy succeeded.
- Broker: broker and controller in one JVM on 127.0.0.1; the controller port is the broker port + 1;
  data, rendered configuration, log and pid file under DATA_DIR/kafka/.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import Template

from streams.settings import Settings, load_settings

RESOURCES = Path(__file__).resolve().parent / "kafka"
POM = RESOURCES / "pom.xml"
BROKER_LOG4J = RESOURCES / "log4j2.properties"
TOOLS_LOG4J = RESOURCES / "tools-log4j2.properties"
SERVER_TEMPLATE = RESOURCES / "server-template.properties"  # *.properties: shipped as package data

# log4j-slf4j-impl must match the log4j-core that kafka-server brings; known pairs avoid a second
# Maven run. For other versions the right one is read from kafka-server's pom after resolving.
KNOWN_LOG4J = {"4.1.2": "2.25.3"}
DEFAULT_LOG4J = "2.25.3"

MARKER = ".complete"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


class BrokerError(RuntimeError):
    """The local broker could not be resolved, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------------
# Pure helpers


def broker_address(bootstrap: str) -> tuple[str, int]:
    """The first host:port of a bootstrap string; `localhost` becomes 127.0.0.1 (IPv4 only)."""
    first = bootstrap.split(",")[0].strip()
    first = re.sub(r"^[a-zA-Z_]+://", "", first)
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        raise BrokerError(f"bootstrap {bootstrap!r}: expected host:port")
    host = host.strip("[]") or "127.0.0.1"
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def new_cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A random UUID as URL-safe base64 without padding, what `StorageTool format` expects.

    Drawn like Kafka's own `Uuid.randomUuid()`: a UUID that Kafka reserves (0 and 1) is drawn
    again, and so is one whose text holds a `-` (Kafka 4.1 re-draws only a leading one, which
    command-line parsers take for an option: 1 id in 64; since KAFKA-20072 Kafka avoids `-`
    anywhere, and so do we).
    """
    while True:
        raw = draw()
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if "-" not in text and int.from_bytes(raw) > 1:
            return text


def cluster_id_from_meta(meta_properties: str) -> str | None:
    """The `cluster.id` of a formatted data dir's meta.properties."""
    m = re.search(r"^cluster\.id=(\S+)", meta_properties, re.MULTILINE)
    return m.group(1) if m else None


def render_server_properties(host: str, broker_port: int, log_dirs: Path) -> str:
    return Template(SERVER_TEMPLATE.read_text()).substitute(
        host=host, broker_port=broker_port, controller_port=broker_port + 1, log_dirs=str(log_dirs)
    )


def log4j_version_from_pom(pom_text: str) -> str | None:
    """The log4j-core version that kafka-server's pom asks for."""
    m = re.search(r"<artifactId>log4j-core</artifactId>\s*<version>([^<]+)</version>", pom_text, re.MULTILINE)
    return m.group(1).strip() if m else None


def parse_java_major(version_output: str) -> int | None:
    """`java -version` output to its major version (`1.8.0_x` is 8, `17.0.15` is 17)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


# --------------------------------------------------------------------------------------------------
# Jars


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seatledger"


def jars_dir(version: str) -> Path:
    return cache_root() / f"kafka-{version}" / "libs"


def _mvn_copy(version: str, log4j: str, out: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    cmd = [
        mvn, "-q", "-B", "-f", str(POM),
        f"-Dkafka.version={version}", f"-Dlog4j.version={log4j}",
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={out}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BrokerError(f"mvn could not resolve kafka_2.13 {version}:\n{tail}")


def _kafka_server_pom(version: str) -> Path:
    repo = Path(os.environ.get("MAVEN_REPO_LOCAL", Path.home() / ".m2" / "repository"))
    return repo / "org/apache/kafka/kafka-server" / version / f"kafka-server-{version}.pom"


def ensure_jars(version: str = "4.1.2") -> Path:
    """The folder of the broker's jars for `version`, resolving them with Maven the first time."""
    libs = jars_dir(version)
    marker = libs.parent / MARKER
    if marker.exists() and libs.is_dir():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = libs.parent / f"libs.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log4j = KNOWN_LOG4J.get(version, DEFAULT_LOG4J)
    _mvn_copy(version, log4j, tmp)
    if version not in KNOWN_LOG4J:
        pom = _kafka_server_pom(version)
        wanted = log4j_version_from_pom(pom.read_text()) if pom.exists() else None
        if wanted and wanted != log4j:
            shutil.rmtree(tmp)
            log4j = wanted
            _mvn_copy(version, log4j, tmp)
    if not (tmp / f"kafka_2.13-{version}.jar").exists():
        raise BrokerError(f"mvn finished but kafka_2.13-{version}.jar is missing from {tmp}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(f"kafka_2.13 {version}\nlog4j-slf4j-impl {log4j}\n")
    return libs


# --------------------------------------------------------------------------------------------------
# Processes and ports


def java_executable() -> str:
    """`java` from JAVA_HOME or PATH, checked to be 17 or newer (Kafka 4 needs 17)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH: Kafka 4 needs Java 17 or newer")
    out = subprocess.run([java, "-version"], capture_output=True, text=True)
    major = parse_java_major(out.stderr + out.stdout)
    if major is not None and major < 17:
        raise BrokerError(f"{java} is Java {major}; Kafka 4 needs Java 17 or newer")
    return java


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port p with p and p+1 both free (broker and controller), for parallel test runs."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port < 65535 and port_free(host, port) and port_free(host, port + 1):
            return port
    raise BrokerError("no two consecutive free ports found")


def _alive(pid: int) -> bool:
    try:  # our own child: reap it if it exited, or it lingers as a zombie that kill(0) still sees
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
        return out.stdout.strip()


# --------------------------------------------------------------------------------------------------
# The broker


@dataclass(frozen=True)
class BrokerPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def log(self) -> Path:
        return self.root / "broker.log"

    @property
    def pid(self) -> Path:
        return self.root / "broker.pid"


def paths(settings: Settings) -> BrokerPaths:
    return BrokerPaths(Path(settings.data_dir).resolve() / "kafka")


@dataclass(frozen=True)
class BrokerStatus:
    bootstrap: str
    answering: bool  # something accepts connections on the bootstrap address
    pid: int | None  # the broker this data dir started, when it is still running
    log: Path
    started_now: bool = False
    seconds: float = 0.0

    @property
    def managed(self) -> bool:
        """True when the broker answering is (probably) the one whose pid file we hold."""
        return self.pid is not None

    def describe(self) -> str:
        if self.answering and self.pid:
            return f"running on {self.bootstrap} (pid {self.pid}, log {self.log})"
        if self.answering:
            return f"a broker answers on {self.bootstrap} (not started by seatledger from this data dir)"
        if self.pid:
            return f"starting or stuck: pid {self.pid} alive but {self.bootstrap} does not answer (log {self.log})"
        return f"not running ({self.bootstrap} does not answer)"


def _our_pid(p: BrokerPaths) -> int | None:
    """The pid in the pid file when that process is alive and is a broker run from this data dir."""
    try:
        pid = int(p.pid.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not _alive(pid):
        return None
    cmd = _cmdline(pid)
    return pid if ("kafka.Kafka" in cmd and str(p.config) in cmd) else None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def status(settings: Settings) -> BrokerStatus:
    host, port = broker_address(settings.bootstrap)
    p = paths(settings)
    return BrokerStatus(f"{host}:{port}", answers(host, port), _our_pid(p), p.log)


def start(settings: Settings, *, fresh: bool = False, timeout: float = READY_TIMEOUT_S) -> BrokerStatus:
    """Start a broker on the bootstrap address unless one answers there already.

    Idempotent: returns at once when the address answers. `fresh` wipes the data dir first.
    Raises BrokerError (with the log's tail when the JVM died) when it cannot start.
    """
    t0 = time.monotonic()
    host, port = broker_address(settings.bootstrap)
    p = paths(settings)
    if answers(host, port):
        return BrokerStatus(f"{host}:{port}", True, _our_pid(p), p.log)
    _check_startable(host, port, p)
    libs = ensure_jars(settings.kafka_version)
    java = java_executable()
    if fresh:
        shutil.rmtree(p.data, ignore_errors=True)
    p.root.mkdir(parents=True, exist_ok=True)
    p.config.write_text(render_server_properties(host, port, p.data))
    classpath = str(libs / "*")  # a list argument, so the JVM, not a shell, expands the star

    # `--ignore-formatted` still fails when the id differs from the one on disk: reuse that one.
    meta = p.data / "meta.properties"
    cluster_id = (cluster_id_from_meta(meta.read_text()) if meta.exists() else None) or new_cluster_id()
    format_storage(java, classpath, p, cluster_id)

    with open(p.log, "ab") as log:
        proc = subprocess.Popen(
            [java, "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={BROKER_LOG4J}",
             "-cp", classpath, "kafka.Kafka", str(p.config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C in our terminal does not hit it
        )  # fmt: skip
    p.pid.write_text(f"{proc.pid}\n")
    _wait_until_answering(proc, host, port, p, timeout)
    return BrokerStatus(f"{host}:{port}", True, proc.pid, p.log, True, time.monotonic() - t0)


def _check_startable(host: str, port: int, p: BrokerPaths) -> None:
    """Refuse to start when the broker or controller port is taken, or our broker hangs."""
    busy = [q for q in (port, port + 1) if not port_free(host, q)]
    if busy:
        raise BrokerError(
            f"port(s) {busy} on {host} are in use but no broker answers on {port}; "
            "free them or choose another SEATLEDGER_BOOTSTRAP (the controller uses the broker port + 1)"
        )
    stale = _our_pid(p)
    if stale:
        raise BrokerError(f"a broker from {p.root} (pid {stale}) is running but does not answer; stop it first")


def format_storage(java: str, classpath: str, p: BrokerPaths, cluster_id: str) -> None:
    """`kafka-storage format` the data dir for `cluster_id` (a no-op when done already).

    The id goes as `--cluster-id=ID`: in two words, an id starting with `-` reads as an option.
    """
    fmt = subprocess.run(
        [java, f"-Dlog4j2.configurationFile={TOOLS_LOG4J}", "-cp", classpath, "kafka.tools.StorageTool",
         "format", f"--cluster-id={cluster_id}", "--config", str(p.config), "--ignore-formatted"],
        capture_output=True, text=True,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise BrokerError(f"formatting {p.data} failed:\n{fmt.stdout}{fmt.stderr}")


def _wait_until_answering(proc: subprocess.Popen, host: str, port: int, p: BrokerPaths, timeout: float) -> None:
    """Until the broker port answers; BrokerError (and no pid file) when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            p.pid.unlink(missing_ok=True)
            raise BrokerError(f"the broker exited with code {proc.returncode}; last lines of {p.log}:\n{_tail(p.log)}")
        # 9092 opens only once the broker is unfenced; 9093 opens earlier, so it is not a signal.
        if answers(host, port):
            return
        time.sleep(0.2)
    _terminate(proc.pid)
    p.pid.unlink(missing_ok=True)
    raise BrokerError(f"the broker did not answer on {host}:{port} within {timeout:.0f}s:\n{_tail(p.log)}")


def _terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM (controlled shutdown), SIGKILL after `timeout`; True when it stopped gracefully."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    return False


def stop(settings: Settings, timeout: float = STOP_TIMEOUT_S) -> str:
    """Stop the broker this data dir started (per its pid file); never touches any other process."""
    p = paths(settings)
    pid = _our_pid(p)
    if pid is None:
        p.pid.unlink(missing_ok=True)
        host, port = broker_address(settings.bootstrap)
        if answers(host, port):
            return f"not stopped: the broker on {host}:{port} was not started from {p.root}"
        return "not running"
    graceful = _terminate(pid, timeout)
    p.pid.unlink(missing_ok=True)
    return f"stopped pid {pid}" + ("" if graceful else f" (killed after {timeout:.0f}s)")


@contextmanager
def session_broker(wanted: Settings, data_dir: Path | None = None) -> Iterator[tuple[Settings, bool]]:
    """(settings, owned) for the length of the block: `wanted` itself when a broker answers at its
    bootstrap address; else a broker started for the block and stopped after it, its data in
    `data_dir` (a fresh temporary directory when None, removed with the broker's data after it).

    The block's own broker gets two free ports, not 9092: a broker on the default port would be
    adopted by another session (a test run, a benchmark) started meanwhile, and vanish under it
    when this one ends.
    """
    host, port = broker_address(wanted.bootstrap)
    if answers(host, port):
        yield wanted, False
        return
    data = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix="seatledger-kafka-"))
    own = load_settings(bootstrap=f"127.0.0.1:{free_port_pair()}", data_dir=data)
    try:
        start(own)
        try:
            yield own, True
        finally:
            stop(own)
    finally:
        if data_dir is None:  # a temporary directory of ours: a benchmark's log is gigabytes
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - `python -m devtools.local_broker` resolves the jars
    import sys

    print(ensure_jars(sys.argv[1] if len(sys.argv) > 1 else load_settings().kafka_version))
