"""The fusion node in a process of its own, exactly as ``ros2 run`` starts it, for the demo and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sage_ros.harness.dds import remove_stale_shm_files


class LoopbackError(RuntimeError):
    """The fusion node did not start or did not answer; the message carries its log tail."""


class NodeProcess:
    """The fusion node in a process of its own, logging to ``log_path``."""

    def __init__(self, namespace: str, params: dict[str, object], log_path: Path | None = None,
                 pythonpath: str | None = None) -> None:
        self.log_path = log_path
        command = [sys.executable, "-m", "sage_ros.fusion_node", "--ros-args", "-r", f"__ns:={namespace}",
                   "--log-level", "sage_fusion:=info"]
        for name, value in params.items():
            command += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - open for the process's life, closed by stop()
        env = os.environ.copy()
        if pythonpath:  # another checkout's node (a benchmark's baseline), in this environment
            env["PYTHONPATH"] = pythonpath
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=pythonpath)

    def exited(self) -> int | None:
        return self.process.poll()

    def last_words(self) -> str:
        """The node's own error line (or its last log line), for a one-line message."""
        if not (self.log_path and Path(self.log_path).exists()):
            return "(no node log kept)"
        lines = [line.strip() for line in Path(self.log_path).read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["(node printed nothing)"])[-1] + f" [log: {self.log_path}]"

    def wait_ready(self, ready: Callable[[], bool], timeout: float, step: Callable[[], None]) -> None:
        """Run ``step`` until ``ready()``; LoopbackError (with the node's last words) if the node exits first
        or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.exited() is not None:
                raise LoopbackError(f"fusion node exited with status {self.exited()} before it was ready: "
                                    f"{self.last_words()}")
            if time.monotonic() > deadline:
                raise LoopbackError(f"fusion node not ready after {timeout:.0f} s: {self.last_words()}")
            step()

    def stop(self, grace_s: float = 15.0) -> int:
        """Stop the node as Ctrl-C does (SIGINT: it stops in order), SIGKILL only after ``grace_s``; its status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                remove_stale_shm_files()  # what the killed node held in /dev/shm (dead processes' files only)
        if self.log_path:
            self._log.close()
        return self.process.returncode
