"""Finding the external programs the stack runs.

PostgreSQL's server binaries are usually not on PATH on Debian (they live in
`/usr/lib/postgresql/<major>/bin`), and `/usr/bin/pg_basebackup` may be a
version-dispatching wrapper, so every PostgreSQL tool is taken from the one
directory where `initdb` was found: client and server then always match.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from bookvault.stack.errors import StackError

POSTGRES_INSTALL_HINT = "install PostgreSQL server binaries (apt-get install postgresql)"
REDIS_INSTALL_HINT = "install Redis (apt-get install redis-server)"
_DEBIAN_POSTGRES_ROOT = Path("/usr/lib/postgresql")


def _major(path: Path) -> int:
    match = re.fullmatch(r"(\d+)", path.name)
    return int(match.group(1)) if match else -1


def postgres_bin_dir(search_root: Path = _DEBIAN_POSTGRES_ROOT, path_env: str | None = None) -> Path:
    """The directory holding `initdb`: from PATH first, else the newest Debian install."""
    found = shutil.which("initdb", path=path_env if path_env is not None else os.environ.get("PATH"))
    if found:
        return Path(found).resolve().parent
    if search_root.is_dir():
        versions = sorted((d for d in search_root.iterdir() if _major(d) >= 0), key=_major, reverse=True)
        for version in versions:
            if (version / "bin" / "initdb").is_file():
                return version / "bin"
    raise StackError(f"initdb not found: {POSTGRES_INSTALL_HINT}")


def postgres_tool(name: str, bin_dir: Path) -> Path:
    tool = bin_dir / name
    if not tool.is_file():
        raise StackError(f"{name} not found in {bin_dir}: {POSTGRES_INSTALL_HINT}")
    return tool


def program(name: str, install_hint: str) -> Path:
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found: {install_hint}")
    return Path(found)
