"""`bookvault bench --ladder`: the seed's phase table, measured.

For each phase the stack is brought up through the real CLI with that phase's
pattern switches, measured, and stopped. References (nginx, raw ASGI,
PostgreSQL's pgbench ceilings and the conventional Python stack) are measured
in the same run, because only ratios measured together mean anything on a
shared machine. A phase whose patterns are not built is reported as such and
never measured as if it were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bookvault.auth import TokenCodec
from bookvault.bench import references
from bookvault.bench.dbstats import statement_calls
from bookvault.bench.measure import Measurement, measure
from bookvault.bench.phases import ALONE, PHASES, SEED_OVERALL_CLAIMS, Phase, switches_for
from bookvault.bench.report import PhaseRow, markdown_table, write_charts, write_results
from bookvault.bench.scenarios import (
    BookDetailScenario,
    BorrowScenario,
    PaymentsScenario,
    ReadHeavyScenario,
)
from bookvault.bench.wrk import WrkUnavailable, run_wrk
from bookvault.config import BUILT_PATTERNS, Settings, load_settings
from bookvault.db.migrations import ensure_database

__all__ = ["LadderOptions", "run_ladder"]

# The bench stack gets its own ports and state so a developer's stack keeps running.
# Below Linux's ephemeral range (32768-60999): the bench's own load opens thousands
# of outgoing connections, and one of them may hold any port in that range.
BENCH_PORTS = {
    "BOOKVAULT_GATEWAY_PORT": "28080",
    "BOOKVAULT_CATALOG_PORT": "28081",
    "BOOKVAULT_BORROWING_PORT": "28082",
    "BOOKVAULT_ACCOUNTS_PORT": "28083",
    "BOOKVAULT_POSTGRES_PORT": "25420",
    "BOOKVAULT_REPLICA_PORT": "25421",
    "BOOKVAULT_REDIS_PORT": "26580",
}
_TOKENS = 500


class BenchError(RuntimeError):
    """A ladder step failed; the message says which and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class LadderOptions:
    output: Path
    state_dir: Path
    quick: bool = False
    duration_s: float = 10.0
    connections: int = 64
    books: int = 100_000
    members: int = 10_000
    alone: bool = False

    @classmethod
    def for_mode(cls, output: Path, state_dir: Path, quick: bool) -> LadderOptions:
        if quick:
            return cls(output, state_dir, True, duration_s=3.0, connections=32, books=5_000, members=500)
        return cls(output, state_dir)


def _same(value: Any) -> Any:
    return value


def _factory(scenario: object) -> Callable[[], Any]:
    # A partial of a module-level function pickles; a lambda would not.
    return functools.partial(_same, scenario)


def _cli(args: list[str], env: dict[str, str], timeout_s: float = 300) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "bookvault", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if completed.returncode != 0:
        reason = (completed.stderr or completed.stdout).strip().splitlines()
        raise BenchError(f"`bookvault {' '.join(args)}` failed: {reason[-1] if reason else 'no output'}")
    return completed.stdout


def _phase_env(index: int) -> dict[str, str]:
    return _switch_env(switches_for(index))


def _switch_env(switches: dict[str, bool]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKVAULT_")}
    env.update(BENCH_PORTS)
    env["BOOKVAULT_PROFILE"] = "baseline"
    for name, on in switches.items():
        env[f"BOOKVAULT_{name.upper()}"] = "on" if on else "off"
    # The load comes from one address and a few hundred members, far above any
    # client's fair share: limits this high make every decision (and its Redis round
    # trip) happen without refusing, so the row measures what limiting costs.
    # Refusals are proven by the rate-limit tests, not here.
    for setting in ("RATE", "BURST", "PAYMENTS_RATE", "PAYMENTS_BURST"):
        env[f"BOOKVAULT_RATE_LIMIT_{setting}"] = "1000000"
    return env


def _not_built(phase: Phase) -> tuple[str, ...]:
    return tuple(name for name in phase.adds if name not in BUILT_PATTERNS)


async def _cache_hit_ratio(urls: list[str]) -> float | None:
    """Hits / (hits + misses) summed over every process's cache metrics."""
    hits = misses = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for url in urls:
            try:
                async with session.get(f"{url}/metrics") as response:
                    text = await response.text()
            except aiohttp.ClientError:
                continue
            for line in text.splitlines():
                if line.startswith("bookvault_cache_hits_total"):
                    hits += float(line.rsplit(" ", 1)[1])
                elif line.startswith("bookvault_cache_misses_total"):
                    misses += float(line.rsplit(" ", 1)[1])
    total = hits + misses
    return hits / total if total else None


async def _catalog_reads(url: str) -> dict[str, float] | None:
    """Catalog reads so far by the server that answered (`replicas` on), else None."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        try:
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return None
    reads = {}
    for server in ("primary", "replica"):
        prefix = f'bookvault_db_reads_total{{server="{server}"}} '
        for line in text.splitlines():
            if line.startswith(prefix):
                reads[server] = float(line.removeprefix(prefix))
    return reads or None


class _Ladder:
    def __init__(self, options: LadderOptions, progress: Callable[[str], None]) -> None:
        self.options = options
        self.say = progress
        self.state_args = ["--state-dir", str(options.state_dir)]
        self.results: dict[str, Any] = {"phases": [], "references": {}}
        self.rows: list[PhaseRow] = []

    # --- references -------------------------------------------------------------

    def ceilings(self) -> None:
        options = self.options
        seconds = max(2, int(options.duration_s))
        with references.raw_asgi() as port:
            self.say("reference: raw ASGI ceiling (granian + a ten-line app)")
            self.results["references"]["raw_asgi"] = measure(
                f"http://127.0.0.1:{port}",
                _factory(BookDetailScenario(f"127.0.0.1:{port}", [1])),
                duration_s=options.duration_s,
                connections=options.connections,
            ).as_json()
            try:
                wrk = run_wrk(f"http://127.0.0.1:{port}", ["/"], connections=50, duration_s=seconds)
                self.results["references"]["raw_asgi_wrk_rps"] = wrk.requests_per_s
            except WrkUnavailable as exc:
                self.say(f"  skipped wrk cross-check: {exc}")
        try:
            with references.nginx_static() as port:
                self.say("reference: nginx static ceiling (wrk -c50)")
                wrk = run_wrk(f"http://127.0.0.1:{port}", ["/"], connections=50, duration_s=seconds)
                self.results["references"]["nginx_wrk_rps"] = wrk.requests_per_s
        except (references.ReferenceUnavailable, WrkUnavailable) as exc:
            self.say(f"  skipped nginx: {exc}")

    def database_ceilings(self, settings: Settings) -> None:
        if settings.database_url is None:
            return
        seconds = max(2, int(self.options.duration_s))
        asyncio.run(_ensure_database(settings.database_url, "pgbench"))
        dsn = settings.database_url.rsplit("/", 1)[0] + "/pgbench"
        for select_only in (False, True):
            label = "pgbench -S" if select_only else "pgbench TPC-B"
            self.say(f"reference: {label}, 16 clients")
            try:
                result = references.pgbench(dsn, select_only=select_only, duration_s=seconds)
            except references.ReferenceUnavailable as exc:
                self.say(f"  skipped: {exc}")
                continue
            self.results["references"][result.mode.replace("-", "_") + "_tps"] = result.tps

    def conventional(self, settings: Settings, book_ids: list[int]) -> None:
        if settings.redis_url is None:
            return
        self.say("reference: conventional stack (FastAPI + fastapi-cache2 + slowapi)")
        with references.conventional_stack(
            settings.service_database_url("catalog"), settings.redis_url
        ) as port:
            self.results["references"]["conventional_book_detail"] = measure(
                f"http://127.0.0.1:{port}",
                _factory(BookDetailScenario(f"127.0.0.1:{port}", book_ids)),
                duration_s=self.options.duration_s,
                connections=self.options.connections,
            ).as_json()

    # --- phases -------------------------------------------------------------------

    def phase(self, index: int, phase: Phase, seeded: bool) -> bool:
        missing = _not_built(phase)
        if phase.adds and len(missing) == len(phase.adds):
            self.say(f"{phase.title}: not built ({', '.join(missing)}), skipped")
            self.rows.append(_row(phase, None, None, None, None, missing))
            self.results["phases"].append({"phase": phase.name, "built": False, "not_built": list(missing)})
            return seeded
        env = _phase_env(index)
        self.say(f"{phase.title}: starting the stack")
        _cli(["up", "--detach", *self.state_args], env)
        try:
            if not seeded:
                self.say(f"  seeding {self.options.books} books and {self.options.members} members")
                _cli(
                    [
                        "seed",
                        "--books",
                        str(self.options.books),
                        "--members",
                        str(self.options.members),
                        *self.state_args,
                    ],
                    env,
                    timeout_s=600,
                )
                seeded = True
            status = json.loads(_cli(["status", "--json", *self.state_args], env))
            settings = load_settings({**env, "BOOKVAULT_STATE_DIR": str(self.options.state_dir)})
            settings = dataclasses.replace(
                settings,
                database_url=status["postgres"]["primary_dsn"],
                redis_url=status["redis_url"],
            )
            self._measure_phase(index, phase, settings, status, missing)
        finally:
            _cli(["down", *self.state_args], env)
        return seeded

    def _measure_phase(
        self, index: int, phase: Phase, settings: Settings, status: dict[str, Any], missing: tuple[str, ...]
    ) -> None:
        options = self.options
        gateway = status["gateway_url"]
        host = gateway.removeprefix("http://")
        tokens = self._member_tokens(settings)
        book_ids = list(range(1, options.books + 1))
        if index == 0:
            self.database_ceilings(settings)
            self.conventional(settings, book_ids)
        reads_before = asyncio.run(_catalog_reads(status["services"]["catalog"]))
        read_heavy, queries_per_s = self._read_heavy(
            gateway, settings.database_url or "", list(tokens.values())
        )
        hit_ratio = asyncio.run(_cache_hit_ratio([gateway, *status["services"].values()]))
        reads_after = asyncio.run(_catalog_reads(status["services"]["catalog"]))
        phase_result: dict[str, Any] = {
            "phase": phase.name,
            "built": True,
            "not_built": list(missing),
            "patterns": switches_for(index),
            "read_heavy": read_heavy.as_json(),
            "catalog_db_queries_per_s": queries_per_s,
            "cache_hit_ratio": hit_ratio,
            # Routed catalog reads during read-heavy, by the server that answered:
            # the replica's share is what `replicas` (phase 4) takes off the primary.
            "catalog_reads_by_server": {
                server: count - (reads_before or {}).get(server, 0.0) for server, count in reads_after.items()
            }
            if reads_after
            else None,
        }
        if not options.quick:
            self.say("  book detail only (the conventional stack's endpoint)")
            phase_result["book_detail"] = measure(
                gateway,
                _factory(BookDetailScenario(host, book_ids)),
                duration_s=options.duration_s,
                connections=options.connections,
            ).as_json()
        self.say("  payments with unique keys and 10% retries")
        phase_result["payments"] = measure(
            gateway,
            _factory(PaymentsScenario(host, tokens)),
            duration_s=options.duration_s,
            connections=min(options.connections, 32),
        ).as_json()
        if not options.quick:
            self.say("  borrow and return, contention on popular books")
            phase_result["borrow"] = measure(
                gateway,
                _factory(BorrowScenario(host, book_ids[:2000], tokens)),
                duration_s=options.duration_s,
                connections=min(options.connections, 32),
            ).as_json()
        self.results["phases"].append(phase_result)
        self.rows.append(
            _row(phase, read_heavy, queries_per_s, hit_ratio, read_heavy.percentiles_ms, missing)
        )

    # --- shared by the phases and the groups alone -----------------------------------

    def _member_tokens(self, settings: Settings) -> dict[int, str]:
        codec = TokenCodec(settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer)
        members = range(1, min(self.options.members, _TOKENS) + 1)
        return {member: codec.sign(str(member), "member", ttl_s=3600) for member in members}

    def _read_heavy(
        self, gateway: str, admin_dsn: str, tokens: list[str]
    ) -> tuple[Measurement, float | None]:
        """Read-heavy through the gateway, and the catalog queries per second that
        PostgreSQL counted meanwhile."""
        options = self.options
        calls_before = asyncio.run(statement_calls(admin_dsn, "catalog"))
        started = time.monotonic()
        self.say(f"  read-heavy through the gateway, {options.connections} connections")
        read_heavy = measure(
            gateway,
            _factory(
                ReadHeavyScenario(gateway.removeprefix("http://"), list(range(1, options.books + 1)), tokens)
            ),
            duration_s=options.duration_s,
            connections=options.connections,
        )
        elapsed = time.monotonic() - started
        calls_after = asyncio.run(statement_calls(admin_dsn, "catalog"))
        queries_per_s = (
            (calls_after - calls_before) / elapsed if calls_before is not None and calls_after else None
        )
        return read_heavy, queries_per_s

    # --- each group alone -------------------------------------------------------------

    def alone(self, label: str, names: tuple[str, ...]) -> None:
        """Read-heavy with only `names` on, on the data the ladder seeded."""
        missing = tuple(name for name in names if name not in BUILT_PATTERNS)
        if missing:
            self.say(f"{label} alone: not built ({', '.join(missing)}), skipped")
            return
        env = _switch_env({name: name in names for name in switches_for(len(PHASES) - 1)})
        self.say(f"{label} alone: starting the stack")
        _cli(["up", "--detach", *self.state_args], env)
        try:
            status = json.loads(_cli(["status", "--json", *self.state_args], env))
            settings = load_settings({**env, "BOOKVAULT_STATE_DIR": str(self.options.state_dir)})
            tokens = list(self._member_tokens(settings).values())
            read_heavy, queries_per_s = self._read_heavy(
                status["gateway_url"], status["postgres"]["primary_dsn"], tokens
            )
        finally:
            _cli(["down", *self.state_args], env)
        self.results.setdefault("alone", []).append(
            {
                "label": label,
                "patterns": list(names),
                "read_heavy": read_heavy.as_json(),
                "catalog_db_queries_per_s": queries_per_s,
            }
        )

    # --- whole run ------------------------------------------------------------------

    def run(self) -> Path:
        output = self.options.output
        output.mkdir(parents=True, exist_ok=True)
        started = dt.datetime.now(dt.UTC)
        self.results["started_at"] = started.isoformat()
        self.results["command"] = (
            "bookvault bench --ladder"
            + (" --quick" if self.options.quick else "")
            + (" --alone" if self.options.alone else "")
        )
        self.results["machine"] = _machine()
        self.results["options"] = {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self.options).items()
        }
        self.ceilings()
        seeded = False
        for index, phase in enumerate(PHASES):
            seeded = self.phase(index, phase, seeded)
        if self.options.alone:
            for label, names in ALONE:
                self.alone(label, names)
        self.results["seed_claims"] = SEED_OVERALL_CLAIMS
        self.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        write_results(output / "results.json", self.results)
        (output / "ladder.md").write_text(_ladder_markdown(self.results, self.rows))
        for chart in write_charts(output, self.rows):
            self.say(f"wrote {chart}")
        self.say(f"wrote {output / 'results.json'} and {output / 'ladder.md'}")
        return output


def run_ladder(options: LadderOptions, progress: Callable[[str], None]) -> Path:
    """Run every phase and the references; return the directory with the results."""
    return _Ladder(options, progress).run()


def _row(
    phase: Phase,
    measurement: Measurement | None,
    queries_per_s: float | None,
    hit_ratio: float | None,
    percentiles: dict[str, float] | None,
    missing: tuple[str, ...],
) -> PhaseRow:
    built = measurement is not None
    return PhaseRow(
        phase=phase.name,
        title=phase.title,
        built=built and not missing,
        not_built=missing,
        requests_per_s=measurement.requests_per_s if measurement else None,
        p50_ms=(percentiles or {}).get("p50"),
        p99_ms=(percentiles or {}).get("p99"),
        db_queries_per_s=queries_per_s,
        bytes_per_response=measurement.bytes_per_response if measurement else None,
        cache_hit_ratio=hit_ratio,
        claimed_throughput_gain=phase.claimed_throughput_gain,
        claimed_latency_change=phase.claimed_latency_change,
        percentiles_ms=percentiles or {},
        failed_share=_failed_share(measurement) if measurement else None,
    )


def _failed_share(measurement: Measurement) -> float | None:
    failed = sum(count for status, count in measurement.statuses.items() if status >= 400)
    failed += sum(measurement.errors.values())
    total = sum(measurement.statuses.values()) + sum(measurement.errors.values())
    return failed / total if total else None


async def _ensure_database(admin_dsn: str, name: str) -> None:
    await ensure_database(admin_dsn, name)


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "—"
    return f"{numerator / denominator:.2f}x"


def _read_split_lines(phases: list[dict[str, Any]]) -> list[str]:
    """Where catalog reads were served, for phases that route them (primary only before)."""
    lines = []
    for phase in phases:
        split = phase.get("catalog_reads_by_server")
        if split:
            total = sum(split.values()) or 1.0
            lines.append(
                f"- {phase['phase']}: catalog reads from the primary {split.get('primary', 0):,.0f}, "
                f"from the replica {split.get('replica', 0):,.0f} ({split.get('replica', 0) / total:.0%})"
            )
    if not lines:
        return []
    return [
        "Catalog reads during read-heavy by server (earlier phases: all from the primary):",
        "",
        *lines,
        "",
    ]


def _alone_lines(results: dict[str, Any]) -> list[str]:
    """The `--alone` table: each group over the baseline measured with them."""
    runs = results.get("alone")
    if not runs or runs[0]["patterns"]:
        return []
    base = runs[0]["read_heavy"]["requests_per_s"]
    lines = [
        "### Each group alone over the baseline (read-heavy)",
        "",
        "| Patterns on | req/s | vs baseline | p50 ms | p99 ms | DB queries/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        heavy = run["read_heavy"]
        lines.append(
            f"| {run['label']} | {heavy['requests_per_s']:,.0f} | {_ratio(heavy['requests_per_s'], base)} | "
            f"{heavy['percentiles_ms'].get('p50', 0):.2f} | {heavy['percentiles_ms'].get('p99', 0):.2f} | "
            f"{_number(run.get('catalog_db_queries_per_s'))} |"
        )
    return [*lines, ""]


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ladder_markdown(results: dict[str, Any], rows: list[PhaseRow]) -> str:
    refs = results["references"]
    raw = (refs.get("raw_asgi") or {}).get("requests_per_s")
    conventional = (refs.get("conventional_book_detail") or {}).get("requests_per_s")
    measured = [p for p in results["phases"] if p.get("built")]
    best = max(measured, key=lambda p: p["read_heavy"]["requests_per_s"]) if measured else None
    baseline = measured[0] if measured else None
    lines = [
        f"Command: `{results['command']}` — started {results['started_at']}",
        f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} CPUs, "
        f"Python {results['machine']['python']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in results['machine']['load_average'])}",
        "",
        "### Phase ladder (read-heavy through the gateway)",
        "",
        markdown_table(rows),
        *_read_split_lines(results["phases"]),
        *_alone_lines(results),
        "### References, same run",
        "",
        "| Reference | req/s or tps |",
        "|---|---:|",
        f"| nginx static ceiling (wrk -c50) | {refs.get('nginx_wrk_rps', '—'):,} |"
        if isinstance(refs.get("nginx_wrk_rps"), float)
        else "| nginx static ceiling (wrk -c50) | not measured |",
        f"| raw ASGI ceiling (our generator) | {raw:,.0f} |"
        if raw
        else "| raw ASGI ceiling | not measured |",
        f"| raw ASGI ceiling (wrk -c50) | {refs['raw_asgi_wrk_rps']:,.0f} |"
        if refs.get("raw_asgi_wrk_rps")
        else "| raw ASGI ceiling (wrk) | not measured |",
        f"| conventional stack, book detail | {conventional:,.0f} |"
        if conventional
        else "| conventional stack | not measured |",
        f"| pgbench TPC-B, 16 clients | {refs['tpc_b_tps']:,.0f} tps |"
        if refs.get("tpc_b_tps")
        else "| pgbench TPC-B | not measured |",
        f"| pgbench -S, 16 clients | {refs['select_only_tps']:,.0f} tps |"
        if refs.get("select_only_tps")
        else "| pgbench -S | not measured |",
        "",
        "### Ratios, same run",
        "",
    ]
    if best is not None and baseline is not None:
        best_rps = best["read_heavy"]["requests_per_s"]
        lines += [
            f"- best phase ({best['phase']}) read-heavy vs raw ASGI ceiling: {_ratio(best_rps, raw)}",
            f"- best phase vs baseline: {_ratio(best_rps, baseline['read_heavy']['requests_per_s'])}",
        ]
        detail = (best.get("book_detail") or {}).get("requests_per_s")
        lines.append(f"- best phase book detail vs conventional stack: {_ratio(detail, conventional)}")
        payments = (best.get("payments") or {}).get("requests_per_s")
        lines.append(f"- payments vs pgbench TPC-B: {_ratio(payments, refs.get('tpc_b_tps'))}")
    lines.append("")
    return "\n".join(lines)
