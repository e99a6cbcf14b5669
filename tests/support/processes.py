"""Processes the integration tests start of their own: a service or the gateway
served by granian exactly as the stack runs it, on a port of the test's choosing,
waited for until ready and stopped again.

    free_port()                       a port nobody listens on right now
    Process.start(name, settings, workdir)
                                      `bookvault.<name>.app` on `settings.service_port(name)`
    await process.wait_ready(path)    until `path` answers 200 (or `ready` says so)
    process.stop()                    terminate, and kill if that is not enough
    async with Process.running(name, [settings, ...], workdir) as started:
                                      one process per settings, all ready; stopped after
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Self

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bookvault.config import Settings

STARTUP_DEADLINE_S = 30.0
STOP_TIMEOUT_S = 15.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_200(status: int, body: str) -> bool:
    return status == 200


@dataclasses.dataclass
class Process:
    """One granian process serving `bookvault.<name>.app` with `settings`."""

    name: str
    settings: Settings
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, settings: Settings, workdir: Path) -> Self:
        """Starts it on `settings.service_port(name)`, never with a developer's own
        BOOKVAULT_* variables or bookvault.toml; its output goes to a log in `workdir`."""
        port = settings.service_port(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKVAULT_")}
        env.update(settings.as_environment())
        env["BOOKVAULT_CONFIG"] = os.devnull
        env["PYTHONUNBUFFERED"] = "1"
        log = workdir / f"{name}-{port}.log"
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory"]
        command += ["--host", settings.host, "--port", str(port), "--loop", "uvloop"]
        command += ["--workers", "1", f"bookvault.{name}.app:create_app"]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        return cls(name, settings, port, process, log)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        name: str,
        each: Iterable[Settings],
        workdir: Path,
        path: str = "/healthz",
        ready: Callable[[int, str], bool] = _answers_200,
    ) -> AsyncIterator[list[Self]]:
        """One process per settings in `each`, started and waited for in turn, all
        stopped when the block ends."""
        started: list[Self] = []
        try:
            for settings in each:
                process = cls.start(name, settings, workdir)
                started.append(process)
                await process.wait_ready(path, ready)
            yield started
        finally:
            for process in started:
                process.stop()

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def wait_ready(
        self, path: str = "/healthz", ready: Callable[[int, str], bool] = _answers_200
    ) -> None:
        """Polls `path` until `ready(status, body)`; stops the process and raises with
        its log if it exits or is not ready within the startup deadline."""
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    async with client.get(self.url + path) as resp:
                        if ready(resp.status, await resp.text()):
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)  # polling for startup, not timing an assertion
        self.stop()
        raise RuntimeError(
            f"{self.name} at {self.url} did not become ready; its log:\n{self.log.read_text()}"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def metrics(self, session: aiohttp.ClientSession) -> Samples:
        """Every sample on /metrics, keyed by name and sorted labels."""
        async with session.get(f"{self.url}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    async def breaker(self, session: aiohttp.ClientSession, dependency: str) -> dict[str, Any]:
        """The breaker's state and counts as this process reports them."""
        samples = await self.metrics(session)
        state = [
            dict(labels)["state"]
            for (name, labels), value in samples.items()
            if name == "bookvault_breaker_state"
            and dict(labels).get("dependency") == dependency
            and value == 1.0
        ]
        key = (("dependency", dependency),)
        return {
            "state": state[0] if state else None,
            "not_permitted": samples.get(("bookvault_breaker_not_permitted_calls_total", key), 0.0),
            "failed": samples.get(("bookvault_breaker_failed_calls", key), 0.0),
            "slow": samples.get(("bookvault_breaker_slow_calls", key), 0.0),
            "buffered": samples.get(("bookvault_breaker_buffered_calls", key), 0.0),
            "bulkhead_rejected": samples.get(("bookvault_bulkhead_rejected_calls_total", key), 0.0),
            "bulkhead_in_flight": samples.get(("bookvault_bulkhead_in_flight", key), 0.0),
        }
