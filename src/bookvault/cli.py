"""The `bookvault` command: run the local stack and work with it.

Exit codes: 0 success, 1 failure (one line on stderr saying why), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bookvault.auth import TokenCodec
from bookvault.config import ConfigError, Settings, load_settings
from bookvault.stack import daemon
from bookvault.stack.control import stop_stack, supervisor_running
from bookvault.stack.errors import StackError
from bookvault.stack.migrate import migrate
from bookvault.stack.paths import StatePaths
from bookvault.stack.run import AlreadyRunningError, run_foreground
from bookvault.stack.state import StackRecord, read_environment, read_state
from bookvault.stack.status import collect, render_text
from bookvault.stack.table import render

EXIT_OK = 0
EXIT_FAILURE = 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


# --- settings of a running stack ---------------------------------------------------------


def _base_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(state_dir=getattr(args, "state_dir", None), **overrides)


def _stack_settings(args: argparse.Namespace) -> tuple[Settings, StatePaths]:
    """The settings of the stack running in the state dir, else those of the environment.

    Explicit `BOOKVAULT_*` variables win over what the running stack resolved."""
    base = _base_settings(args)
    paths = StatePaths.at(base.state_dir)
    stack_env = read_environment(paths) if supervisor_running(paths) else None
    if stack_env is None:
        return base, paths
    own = {name: value for name, value in os.environ.items() if name.startswith("BOOKVAULT_")}
    return load_settings({**stack_env, **own}, state_dir=paths.root), paths


def _database_settings(args: argparse.Namespace) -> Settings:
    settings, paths = _stack_settings(args)
    if settings.database_url is None:
        raise StackError(
            f"BookVault is not running in {paths.root}: start it with `bookvault up --detach` "
            "or set BOOKVAULT_DATABASE_URL"
        )
    return settings


# --- up / down / status ---------------------------------------------------------------------


def _print_ready(record: StackRecord, detached: bool) -> None:
    rows = [[c.name, c.state, str(c.pid or "-"), c.address] for c in record.components]
    gateway = next((c.address for c in record.components if c.name == "gateway"), "-")
    stop = "bookvault down" if detached else "Ctrl-C (or `bookvault down` from another terminal)"
    print(f"\nBookVault is running (profile {record.profile}, state dir {record.state_dir})\n")
    print(render(["COMPONENT", "STATE", "PID", "ADDRESS"], rows))
    print(f"\ngateway: {gateway}\nlogs:    {Path(record.state_dir) / 'logs'}\nstop:    {stop}\n", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    settings = _base_settings(args, profile=args.profile, gateway_workers=args.gateway_workers)
    paths = StatePaths.at(settings.state_dir)
    if supervisor_running(paths):
        record = read_state(paths)
        pid = f" (supervisor pid {record.supervisor_pid})" if record else ""
        print(f"BookVault is already running in {paths.root}{pid}")
        return EXIT_OK
    if args.detach:
        forwarded = ["--state-dir", str(paths.root), "--profile", settings.profile]
        forwarded += ["--gateway-workers", str(settings.gateway_workers)]
        print(f"starting BookVault in the background (log: {paths.log('supervisor')})", flush=True)
        _print_ready(daemon.launch(forwarded, paths), detached=True)
        return EXIT_OK
    try:
        run_foreground(settings, _say, lambda record, _settings: _print_ready(record, detached=False))
    except AlreadyRunningError as exc:
        print(exc)
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    paths = StatePaths.at(_base_settings(args).state_dir)
    if stop_stack(paths, print):
        print(f"BookVault stopped ({paths.root})")
    else:
        print(f"BookVault is not running in {paths.root}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    settings, paths = _stack_settings(args)
    running = supervisor_running(paths)
    record = read_state(paths)
    report = asyncio.run(collect(settings, record, running))
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(render_text(report))
    if not running:
        print(f"bookvault: not running in {paths.root}: start it with `bookvault up`", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# --- seed / token / migrate -------------------------------------------------------------------


class _Progress:
    """Progress of a long load: a live line on a terminal, every tenth otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.live = sys.stderr.isatty()
        self._last_tenth = -1
        self._started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if self.live:
            sys.stderr.write(f"\r{self.label}: {done:,}/{total:,}")
            sys.stderr.flush()
            return
        tenth = 10 * done // total if total else 10
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            print(f"{self.label}: {done:,}/{total:,}", flush=True)

    def finish(self, count: int) -> None:
        if self.live:
            sys.stderr.write("\n")
        print(f"{self.label}: {count:,} loaded in {time.monotonic() - self._started:.1f}s", flush=True)


def _seeder(module: str, name: str) -> Callable[..., Any]:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError:
        raise StackError(f"{module} is not available: this build cannot seed that data yet") from None
    function: Callable[..., Any] = getattr(loaded, name)
    return function


def _call(function: Callable[..., Any], *arguments: Any) -> Any:
    # A seeder may be a plain function or a coroutine function.
    result = function(*arguments)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def cmd_seed(args: argparse.Namespace) -> int:
    settings = _database_settings(args)
    for label, module, name, service, count in (
        ("books", "bookvault.catalog.seed", "seed_books", "catalog", args.books),
        ("members", "bookvault.accounts.seed", "seed_members", "accounts", args.members),
    ):
        if count == 0:
            continue
        progress = _Progress(label)
        loaded = _call(
            _seeder(module, name), settings.service_database_url(service), count, args.seed, progress
        )
        progress.finish(int(loaded))
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    settings, _paths = _stack_settings(args)
    if args.revoke:
        return _revoke_member_tokens(settings, str(args.member))
    if args.ttl > settings.jwt_max_ttl_s:
        raise StackError(
            f"the gateway accepts tokens living at most {settings.jwt_max_ttl_s} s "
            "(BOOKVAULT_JWT_MAX_TTL_S); ask for a shorter --ttl"
        )
    codec = TokenCodec(settings.resolved_jwt_secret(), settings.jwt_algorithm, settings.jwt_issuer)
    print(codec.sign(str(args.member), args.role, args.ttl))
    return EXIT_OK


def _revoke_member_tokens(settings: Settings, member: str) -> int:
    """Every token of `member` issued until now is refused by every gateway process."""
    from bookvault.gateway.revocations import RevocationStore, RevocationStoreError

    if settings.redis_url is None:
        raise StackError("no Redis to store the revocation in: start the stack or set BOOKVAULT_REDIS_URL")
    redis_url = settings.redis_url

    async def revoke() -> float:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        store = RevocationStore(client, max_ttl_s=settings.jwt_max_ttl_s)
        try:
            now = time.time()
            await store.revoke_subject(member, now, now=now)
            return now
        finally:
            await client.aclose()

    try:
        cutoff = asyncio.run(revoke())
    except RevocationStoreError as exc:
        raise StackError(str(exc)) from None
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutoff))
    print(f"revoked every token of member {member} issued before {issued}")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _database_settings(args)
    asyncio.run(migrate(settings, lambda line: print(line, flush=True)))
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from bookvault.bench.ladder import BenchError, LadderOptions, run_ladder

    if not args.ladder:
        raise StackError("choose what to run: `bookvault bench --ladder [--quick]`")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.output or Path("bench-results") / stamp
    state_dir = args.state_dir or Path(".bookvault-bench")
    options = LadderOptions.for_mode(output.resolve(), state_dir.resolve(), args.quick)
    if args.duration is not None:
        options = dataclasses.replace(options, duration_s=args.duration)
    if args.alone:
        options = dataclasses.replace(options, alone=True)
    try:
        run_ladder(options, lambda line: print(line, flush=True))
    except BenchError as exc:
        raise StackError(str(exc)) from None
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bookvault", description="Run and work with a BookVault stack.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    state_dir = argparse.ArgumentParser(add_help=False)
    state_dir.add_argument(
        "--state-dir", type=Path, help="where the stack keeps data, logs and secrets (default ./.bookvault)"
    )

    up = commands.add_parser("up", parents=[state_dir], help="start PostgreSQL, Redis and every service")
    up.add_argument("--profile", choices=["optimized", "baseline"], help="which patterns are on")
    up.add_argument("--gateway-workers", type=_positive_int, help="gateway worker processes")
    up.add_argument("--detach", action="store_true", help="return once everything is ready, leave it running")
    up.set_defaults(handler=cmd_up)

    down = commands.add_parser("down", parents=[state_dir], help="stop everything `up` started")
    down.set_defaults(handler=cmd_down)

    status = commands.add_parser("status", parents=[state_dir], help="every component's state and address")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    seed = commands.add_parser("seed", parents=[state_dir], help="load deterministic synthetic data")
    seed.add_argument(
        "--books", type=_non_negative_int, default=100_000, help="books to load (default 100000)"
    )
    seed.add_argument(
        "--members", type=_non_negative_int, default=10_000, help="members to load (default 10000)"
    )
    seed.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    seed.set_defaults(handler=cmd_seed)

    token = commands.add_parser(
        "token", parents=[state_dir], help="print a signed JWT for a member, or revoke the member's tokens"
    )
    token.add_argument("--member", type=_positive_int, required=True, help="member id (the token's subject)")
    token.add_argument("--role", choices=["member", "admin"], default="member")
    token.add_argument("--ttl", type=_positive_int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument(
        "--revoke", action="store_true", help="instead: refuse every token of the member issued until now"
    )
    token.set_defaults(handler=cmd_token)

    migrate_parser = commands.add_parser("migrate", parents=[state_dir], help="apply pending migrations")
    migrate_parser.set_defaults(handler=cmd_migrate)

    bench = commands.add_parser(
        "bench", parents=[state_dir], help="measure the phase ladder against same-run references"
    )
    bench.add_argument("--ladder", action="store_true", help="run every phase of the seed's plan")
    bench.add_argument("--quick", action="store_true", help="small data and short runs (under 2 minutes)")
    bench.add_argument("--output", type=Path, help="results directory (default bench-results/<time>)")
    bench.add_argument("--duration", type=float, help="seconds per measurement (default 10, quick 3)")
    bench.add_argument(
        "--alone",
        action="store_true",
        help="after the ladder, measure each group of patterns on its own over the baseline",
    )
    bench.set_defaults(handler=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (StackError, ConfigError) as exc:
        print(f"bookvault: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("bookvault: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
