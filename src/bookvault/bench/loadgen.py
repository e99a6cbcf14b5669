"""The load generator: open-loop at a target rate or closed-loop at N connections.

Open-loop latency is measured from each request's *intended* send time, as
wrk2 and k6's arrival-rate executors do: when the system stalls, requests keep
"arriving" on schedule and their wait counts, so a stall cannot hide
(coordinated omission). Closed-loop numbers are reported too, but only
throughput is meaningful there.

The generator runs in its own process (see `run_in_process`) so it never shares
an event loop with the system under test, and it reports its own CPU share.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import multiprocessing.queues
import queue
import resource
from collections import Counter
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from hdrh.histogram import HdrHistogram

from bookvault.bench.http1 import ConnectionClosed, Http1Connection, Response

__all__ = [
    "LoadGeneratorFailed",
    "LoadResult",
    "LoadSpec",
    "ObservingSource",
    "RequestSource",
    "run",
    "run_in_process",
]

# Latencies are recorded in microseconds, from 1 µs to 60 s, 3 significant digits.
_HIST_MAX_US = 60_000_000
# Dispatch granularity of the open-loop scheduler: coarse enough to be cheap,
# fine enough that intended send times stay honest (latency is measured from
# the intended time anyway, so lateness here shows up in the numbers).
_TICK_S = 0.001


class RequestSource(Protocol):
    """Produces the next request to send, already encoded as HTTP/1.1 bytes."""

    def __call__(self) -> bytes: ...


@runtime_checkable
class ObservingSource(Protocol):
    """A source that learns from responses (e.g. the ids of loans it created).
    Only such sources make the generator keep response bodies."""

    def __call__(self) -> bytes: ...

    def observe(self, status: int, body: bytes) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class LoadSpec:
    host: str
    port: int
    mode: Literal["open", "closed"]
    duration_s: float
    connections: int
    # Open-loop only: requests per second to send, whatever the system does.
    rate: float = 0.0
    warmup_s: float = 0.0


@dataclasses.dataclass(slots=True)
class LoadResult:
    requests: int = 0
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    body_bytes: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    histogram: bytes = b""

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_share(self) -> float:
        """Fraction of one core the generator itself used."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def bytes_per_response(self) -> float:
        ok = self.requests - sum(self.errors.values())
        return self.body_bytes / ok if ok else 0.0

    def percentiles_ms(self) -> dict[str, float]:
        histogram = new_histogram()
        if self.histogram:
            histogram.decode_and_add(self.histogram)
        if histogram.get_total_count() == 0:
            return {}
        points = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
        values = {name: histogram.get_value_at_percentile(p) / 1000 for name, p in points.items()}
        values["max"] = histogram.get_max_value() / 1000
        return values


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, _HIST_MAX_US, 3)


class _Pool:
    """Keep-alive connections handed out one request at a time."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self._host = host
        self._port = port
        self._idle: asyncio.Queue[Http1Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)  # opened lazily on first use

    async def send(self, payload: bytes, keep_body: bool = False) -> Response:
        connection = await self._idle.get()
        try:
            if connection is None or not connection.usable:
                connection = await Http1Connection.open(self._host, self._port)
            return await connection.request(payload, keep_body=keep_body)
        except BaseException:
            if connection is not None:
                connection.close()
            connection = None
            raise
        finally:
            self._idle.put_nowait(connection if connection is not None and connection.usable else None)


class _Recorder:
    def __init__(self, clock: Callable[[], float], observer: ObservingSource | None = None) -> None:
        self.clock = clock
        self.observer = observer
        self.histogram = new_histogram()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.body_bytes = 0
        self.requests = 0
        self.recording = True

    async def one(self, pool: _Pool, payload: bytes, intended: float) -> None:
        try:
            response = await pool.send(payload, keep_body=self.observer is not None)
        except (TimeoutError, OSError, ConnectionClosed) as exc:
            if self.recording:
                self.requests += 1
                self.errors[type(exc).__name__] += 1
            return
        status, size = response.status, response.body_bytes
        if self.observer is not None:
            self.observer.observe(status, response.body)
        if self.recording:
            self.requests += 1
            self.statuses[status] += 1
            self.body_bytes += size
            elapsed_us = int((self.clock() - intended) * 1_000_000)
            self.histogram.record_value(min(max(elapsed_us, 1), _HIST_MAX_US))


async def _open_loop(spec: LoadSpec, source: RequestSource, recorder: _Recorder, pool: _Pool) -> float:
    loop = asyncio.get_running_loop()
    interval = 1.0 / spec.rate
    start = loop.time()
    total = int(spec.rate * spec.duration_s)
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    while sent < total:
        now = loop.time()
        due = min(total, int((now - start) / interval) + 1)
        while sent < due:
            intended = start + sent * interval
            task = loop.create_task(recorder.one(pool, source(), intended))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(_TICK_S)
    if pending:
        await asyncio.wait(pending)
    return loop.time() - start


async def _closed_loop(spec: LoadSpec, source: RequestSource, recorder: _Recorder, pool: _Pool) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + spec.duration_s

    async def worker() -> None:
        while loop.time() < deadline:
            await recorder.one(pool, source(), loop.time())

    await asyncio.gather(*(worker() for _ in range(spec.connections)))
    return loop.time() - start


async def run(spec: LoadSpec, source: RequestSource) -> LoadResult:
    """Drive load in this process's event loop and return what was measured."""
    if spec.mode == "open" and spec.rate <= 0:
        raise ValueError("an open-loop run needs a rate above 0 requests/s")
    if spec.connections < 1:
        raise ValueError("at least one connection is needed")
    loop = asyncio.get_running_loop()
    pool = _Pool(spec.host, spec.port, spec.connections)
    recorder = _Recorder(loop.time, source if isinstance(source, ObservingSource) else None)
    if spec.warmup_s > 0:
        recorder.recording = False
        warmup = dataclasses.replace(spec, mode="closed", duration_s=spec.warmup_s)
        await _closed_loop(warmup, source, recorder, pool)
        recorder.recording = True
    cpu_before = _cpu_seconds()
    driver = _open_loop if spec.mode == "open" else _closed_loop
    wall = await driver(spec, source, recorder, pool)
    return LoadResult(
        requests=recorder.requests,
        statuses=dict(recorder.statuses),
        errors=dict(recorder.errors),
        body_bytes=recorder.body_bytes,
        wall_s=wall,
        cpu_s=_cpu_seconds() - cpu_before,
        histogram=recorder.histogram.encode() if recorder.histogram.get_total_count() else b"",
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(
    spec: LoadSpec, source_factory: Callable[[], RequestSource], results: multiprocessing.queues.Queue[object]
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        pass
    try:
        results.put(asyncio.run(run(spec, source_factory())))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line, not a child trace
        results.put(f"{type(exc).__name__}: {exc}")


class LoadGeneratorFailed(RuntimeError):
    """The generator process failed or did not finish in time."""


def run_in_process(
    spec: LoadSpec, source_factory: Callable[[], RequestSource], timeout_s: float | None = None
) -> LoadResult:
    """Run the generator in a fresh process; `source_factory` must be picklable
    (a module-level function or a dataclass with `__call__`)."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[object] = context.Queue()
    process = context.Process(target=_child, args=(spec, source_factory, results), daemon=True)
    process.start()
    limit = timeout_s if timeout_s is not None else spec.duration_s + spec.warmup_s + 60
    try:
        outcome = results.get(timeout=limit)
    except queue.Empty:
        raise LoadGeneratorFailed(
            f"load generator gave no result within {limit:.0f} s (exit code {process.exitcode})"
        ) from None
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    if isinstance(outcome, LoadResult):
        return outcome
    raise LoadGeneratorFailed(f"load generator failed: {outcome}")
