"""A Spark standalone cluster on loopback, for the tests that need a real one.

Started with Spark's own daemon script from the pyspark install (``sbin/spark-daemon.sh``,
what ``start-master.sh`` and ``start-worker.sh`` call; pip's pyspark ships it but not those
two wrappers): one master and N workers bound to 127.0.0.1 on free ports, each with its own
work, log, pid and local (shuffle) folders under one temporary root, so nothing is shared with
another cluster on the machine. ``stop()`` always leaves no process behind: the daemon
script's stop, then SIGKILL by process id for anything of this cluster that is still alive.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_matching(pattern: str) -> list[int]:
    done = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split() if int(p) != os.getpid()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; only a child of ours can be one, and reaping it is harmless
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


class LocalCluster:
    def __init__(self, root: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
        self.root = Path(root)
        self.workers, self.cores, self.memory = workers, cores, memory
        self.master_port, self.master_ui = free_port(), free_port()
        self.worker_ports = [free_port() for _ in range(workers)]
        self.ident = f"test{os.getpid()}-{self.master_port}"  # names the pid and log files

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def env(self, instance: int | None = None) -> dict[str, str]:
        conf = self.root / "conf"  # empty: no spark-env.sh or defaults from elsewhere
        conf.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_CONF_DIR=str(conf),
                   SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(self.root / "logs"),
                   SPARK_PID_DIR=str(self.root / "pids"), SPARK_IDENT_STRING=self.ident,
                   SPARK_DAEMON_MEMORY="256m", PYSPARK_PYTHON=sys.executable,
                   PYSPARK_DRIVER_PYTHON=sys.executable)
        if instance is not None:
            env["SPARK_WORKER_DIR"] = str(self.worker_dir(instance))
            env["SPARK_LOCAL_DIRS"] = str(self.local_dir(instance))
        return env

    def worker_dir(self, instance: int) -> Path:
        return self.root / f"work{instance}"

    def local_dir(self, instance: int) -> Path:
        """Where worker ``instance``'s executors keep shuffle files and blocks."""
        return self.root / f"local{instance}"

    def _daemon(self, action: str, cls: str, instance: int, *args: str):
        env = self.env(instance if cls == WORKER_CLASS else None)
        subprocess.run(["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), action, cls, str(instance), *args],
                       env=env, check=True, capture_output=True, timeout=120)

    def start(self) -> LocalCluster:
        try:
            self._daemon("start", MASTER_CLASS, 1, "--host", "127.0.0.1", "--port", str(self.master_port),
                         "--webui-port", str(self.master_ui))
            for i in range(1, self.workers + 1):
                self._start_worker(i)
            self.wait_for_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_worker(self, i: int):
        self.worker_dir(i).mkdir(parents=True, exist_ok=True)
        self.local_dir(i).mkdir(parents=True, exist_ok=True)
        self._daemon("start", WORKER_CLASS, i, "--host", "127.0.0.1", "--port", str(self.worker_ports[i - 1]),
                     "--webui-port", str(free_port()), "--cores", str(self.cores),
                     "--memory", self.memory, "--work-dir", str(self.worker_dir(i)), self.url)

    def worker_pid(self, instance: int) -> int | None:
        """The Worker daemon JVM of ``instance``, from the daemon script's pid file."""
        f = self.root / "pids" / f"spark-{self.ident}-{WORKER_CLASS}-{instance}.pid"
        try:
            pid = int(f.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def restart_worker(self, instance: int):
        """Bring a killed worker back (same port), so the next test has the whole cluster."""
        if self.worker_pid(instance) is None:
            self._start_worker(instance)
        self.wait_for_workers()

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui}/json/", timeout=10) as r:
            return json.load(r)

    def wait_for_workers(self, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while True:
            try:
                alive = [w for w in self.state()["workers"] if w["state"] == "ALIVE"]
                if len(alive) >= self.workers:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not come up; logs in {self.root / 'logs'}")
            time.sleep(0.5)

    def executor_pids(self, instance: int) -> list[int]:
        """Executor JVMs that worker ``instance`` launched (their command names the worker)."""
        worker = f"spark://Worker@127.0.0.1:{self.worker_ports[instance - 1]}"
        return pids_matching(f"CoarseGrainedExecutorBackend.*{worker}")

    def daemon_pids(self) -> list[int]:
        pids = []
        for f in (self.root / "pids").glob(f"spark-{self.ident}-*.pid"):
            try:
                pids.append(int(f.read_text().strip()))
            except ValueError:
                pass
        return pids

    def stop(self, grace: float = 20):
        """The daemon script's stop (SIGTERM; a worker takes its executors down with it), then
        SIGKILL for whatever of this cluster outlives the grace period."""
        ours = self.daemon_pids() + [p for i in range(1, self.workers + 1) for p in self.executor_pids(i)]
        for i in range(1, self.workers + 1):
            self._stop(WORKER_CLASS, i)
        self._stop(MASTER_CLASS, 1)
        deadline = time.monotonic() + grace
        while ours and time.monotonic() < deadline:
            ours = [pid for pid in ours if alive(pid)]
            time.sleep(0.2)
        for pid in ours:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _stop(self, cls: str, instance: int):
        try:
            self._daemon("stop", cls, instance)
        except (subprocess.SubprocessError, OSError):
            pass

    def submit_cmd(self, script: Path, *args: str, master: str | None = None) -> list[str]:
        """spark-submit of a job against this cluster (or ``master``), small enough for two
        1-core workers."""
        return [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master or self.url,
                "--driver-memory", "1g", "--executor-memory", "768m", "--total-executor-cores",
                str(self.workers * self.cores),
                "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
                "--conf", "spark.sql.shuffle.partitions=4",
                str(script), *args]
