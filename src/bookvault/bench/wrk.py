"""wrk as the closed-loop throughput reference and cross-check.

wrk is C and far cheaper per request than any Python client, so it measures a
server's ceiling; our own generator measures open-loop latency at a fixed rate.
Paths can be varied with a Lua script that cycles through a pre-sampled list.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["WrkResult", "WrkUnavailable", "run_wrk"]

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class WrkUnavailable(RuntimeError):
    """wrk is not installed."""


@dataclasses.dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency_ms: dict[str, float]


def _lua_script(paths: Sequence[str], headers: Mapping[str, str]) -> str:
    quoted = ",".join(_lua_string(p) for p in paths)
    header_lines = "".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}\n" for k, v in headers.items())
    return (
        f"{header_lines}"
        f"local paths = {{{quoted}}}\n"
        "local n = #paths\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % n + 1\n"
        "  return wrk.format(nil, paths[i])\n"
        "end\n"
    )


def _lua_string(text: str) -> str:
    if any(ord(c) < 32 for c in text):
        raise ValueError("paths and headers for wrk must be printable")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk_output(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output: {output[-300:]!r}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    latency = {
        f"p{m.group(1)}": _to_ms(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)(?:\.000)?%\s+([\d.]+\w+)", output, re.MULTILINE)
    }
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        latency_ms=latency,
    )


def run_wrk(
    base_url: str,
    paths: Sequence[str],
    *,
    connections: int = 50,
    threads: int = 1,
    duration_s: int = 5,
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkUnavailable("wrk not found: install it (apt-get install wrk) or run `make test` once")
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "paths.lua"
        script.write_text(_lua_script(paths or ["/"], headers or {}))
        completed = subprocess.run(
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration_s}s",
                "--latency",
                "-s",
                str(script),
                base_url,
            ],
            capture_output=True,
            text=True,
            timeout=duration_s + 30,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed: {completed.stderr.strip() or completed.stdout.strip()}")
    return parse_wrk_output(completed.stdout)
