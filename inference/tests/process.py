"""The real inference process, started as the control plane starts it, for tests over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

START_SECONDS = 120.0
"""Deadline for start-up and readiness: MLX imports and the first load are slow on a busy machine."""


class InferenceProcess:
    """`python -m akidb_inference` with `args`; its stderr JSON lines are collected in `lines`."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        token: str | None = None,
        env: dict[str, str] | None = None,
        stdin_pipe: bool = False,
    ):
        """`stdin_pipe`: stdin is a pipe held open (as the control plane holds it), not /dev/null."""
        environment = {k: v for k, v in os.environ.items() if k != "AKIDB_INFERENCE_TOKEN"}
        environment.update(env or {})
        if token is not None:
            environment["AKIDB_INFERENCE_TOKEN"] = token
        self.token = token
        self.lines: list[dict[str, Any]] = []
        self.other_output: list[str] = []
        self._changed = threading.Condition()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "akidb_inference", *args],
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="inference-stderr", daemon=True)
        self._reader.start()
        listening = self.wait_for_line(lambda line: line["msg"] == "listening")
        self.url = f"http://127.0.0.1:{listening['port']}"
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=START_SECONDS)

    def _read(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            with self._changed:
                if isinstance(parsed, dict):
                    self.lines.append(parsed)
                else:
                    self.other_output.append(raw.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = START_SECONDS
    ) -> dict[str, Any]:
        """The first log line `matches` accepts, waiting for it up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if matches(line)), None)
                if found is not None:
                    return found
                if self._process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"the process exited ({self._process.returncode}): {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such log line within {timeout} s: {self.tail()}")
                self._changed.wait(left)

    def wait_ready(self) -> dict[str, Any]:
        """The model card once /health says ready."""
        line = self.wait_for_line(lambda line: line["msg"] in ("model ready", "model failed to load"))
        assert line["msg"] == "model ready", line
        health = self.client.get("/health")
        assert health.status_code == 200, health.text
        card: dict[str, Any] = health.json()["model"]
        return card

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and return the exit status."""
        if self._process.poll() is None:
            self._process.send_signal(sig)
        try:
            return self._process.wait(timeout)
        finally:
            self._reader.join(timeout)
            self.client.close()

    def kill(self) -> None:
        self.client.close()
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._reader.join()

    def tail(self, lines: int = 15) -> str:
        recent = [json.dumps(line) for line in self.lines[-lines:]] + self.other_output[-lines:]
        return "\n".join(recent)
