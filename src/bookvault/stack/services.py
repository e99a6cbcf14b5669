"""BookVault's own processes: each service and the gateway served by granian."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import urllib.error
import urllib.request

from bookvault.config import SERVICE_NAMES, Settings
from bookvault.stack.errors import StackError
from bookvault.stack.paths import StatePaths
from bookvault.stack.processes import ChildProcess
from bookvault.stack.supervisor import Component, Supervisor

# The gateway starts last and stops first: it only forwards to the others.
START_ORDER: tuple[str, ...] = (*SERVICE_NAMES, "gateway")
HEALTH_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    port: int
    target: str  # "module:factory"
    workers: int = 1


def spec_for(name: str, settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        port=settings.service_port(name),
        target=f"bookvault.{name}.app:create_app",
        workers=settings.gateway_workers if name == "gateway" else 1,
    )


def command(spec: ServiceSpec, host: str, python: str = sys.executable) -> list[str]:
    return [
        python,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        host,
        "--port",
        str(spec.port),
        "--loop",
        "uvloop",
        "--workers",
        str(spec.workers),
        spec.target,
    ]


def service_process(spec: ServiceSpec, settings: Settings, paths: StatePaths) -> ChildProcess:
    env = {**os.environ, **settings.as_environment(), "PYTHONUNBUFFERED": "1"}
    return ChildProcess(
        spec.name, command(spec, settings.host), paths.log(spec.name), env=env, stop_timeout_s=10.0
    )


def is_healthy(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own http:// URL
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_healthy(name: str, url: str, process: ChildProcess, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.returncode
        if code is not None:
            raise StackError(
                f"{name} exited with status {code} while starting "
                f"(see {process.log_path}): {process.last_log_line()}"
            )
        if is_healthy(url):
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{name} did not answer {url} within {timeout_s:.0f}s "
                f"(see {process.log_path}): {process.last_log_line()}"
            )
        time.sleep(0.1)


def service_component(spec: ServiceSpec, settings: Settings, paths: StatePaths) -> Component:
    base_url = f"http://{settings.host}:{spec.port}"
    return Component(
        spec.name,
        "service",
        base_url,
        process=service_process(spec, settings, paths),
        wait_ready=lambda process: wait_healthy(spec.name, f"{base_url}/healthz", process),
    )


def start_services(
    settings: Settings, paths: StatePaths, supervisor: Supervisor, names: tuple[str, ...] = START_ORDER
) -> None:
    """Start the services together (their start-up is mostly imports), then wait for each."""
    for name in names:
        supervisor.add(service_component(spec_for(name, settings), settings, paths), start=False)
    supervisor.start_many(names)
