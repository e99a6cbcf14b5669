"""The command line's contract: exit codes, one-line errors, and commands that need no stack."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bookvault.auth import TokenCodec
from bookvault.cli import main

KEY = "k" * 48


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BOOKVAULT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BOOKVAULT_CONFIG", os.devnull)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["launch"],
        ["token"],
        ["token", "--member", "0"],
        ["up", "--profile", "fast"],
        ["seed", "--books", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage: bookvault" in capsys.readouterr().err


def test_bench_needs_to_be_told_what_to_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 1
    assert "bookvault bench --ladder" in capsys.readouterr().err


def test_token_is_signed_with_the_state_dir_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "jwt.key").write_text(KEY + "\n")
    assert (
        main(["token", "--member", "7", "--role", "admin", "--ttl", "120", "--state-dir", str(tmp_path)]) == 0
    )
    principal = TokenCodec(KEY).verify(capsys.readouterr().out.strip())
    assert (principal.subject, principal.role) == ("7", "admin")


def test_token_without_a_key_says_how_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--member", "7", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no JWT key" in err
    assert "bookvault up" in err


def test_down_when_nothing_runs_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["down", "--state-dir", str(tmp_path)]) == 0
    assert "not running" in capsys.readouterr().out


def test_status_when_nothing_runs_fails_but_still_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--json", "--state-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["running"] is False
    assert report["gateway_url"] == "http://127.0.0.1:8080"
    assert "not running" in captured.err


@pytest.mark.parametrize("command", ["seed", "migrate"])
def test_database_commands_need_a_stack(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is not running" in err
    assert "BOOKVAULT_DATABASE_URL" in err
