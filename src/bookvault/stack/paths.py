"""Where a stack keeps its files: one state directory holds everything."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True, slots=True)
class StatePaths:
    root: Path

    @classmethod
    def at(cls, state_dir: Path) -> StatePaths:
        # Absolute, so child processes started from another directory agree on it.
        return cls(state_dir.expanduser().resolve())

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def primary_data(self) -> Path:
        return self.postgres / "primary"

    @property
    def replica_data(self) -> Path:
        return self.postgres / "replica"

    @property
    def sockets(self) -> Path:
        return self.postgres / "sockets"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def environment_file(self) -> Path:
        """The resolved settings of a running stack, secrets included (mode 0600)."""
        return self.secrets / "environment.json"

    def secret(self, name: str) -> Path:
        return self.secrets / name

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    @property
    def lock_file(self) -> Path:
        return self.root / "supervisor.lock"
