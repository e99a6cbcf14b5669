"""One supervised worker process for the tests of this folder, started by the
stack's WorkerPool exactly as `bookvault up` starts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bookvault.config import Settings
from bookvault.stack.workers import WorkerPool


@pytest.fixture(scope="package")
def worker(system: Settings, local_stack: Any) -> Iterator[WorkerPool]:
    pool = WorkerPool(system, local_stack.paths, local_stack.supervisor)
    pool.start()
    try:
        yield pool
    finally:
        for component in local_stack.supervisor.components:
            if component.kind == "worker":
                local_stack.supervisor.stop(component.name)
