"""Secrets generated once per state directory and kept in files only its owner reads."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

SECRET_MODE = 0o600


def _new_password() -> str:
    # URL-safe, so it goes into a DSN or a redis:// URL without escaping.
    return secrets.token_urlsafe(24)


def read_or_create(path: Path, generate: Callable[[], str] = _new_password) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) the first time."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    except FileExistsError:
        value = path.read_text().strip()
        if value:
            return value
        # An empty file is a creation that was interrupted; replace it.
        path.unlink()
        return read_or_create(path, generate)
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def jwt_key() -> str:
    return secrets.token_urlsafe(48)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)
