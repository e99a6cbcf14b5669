"""One supervised worker process for the tests of this folder, started by the
stack's WorkerPool exactly as `bookvault up` starts it.

worker  the supervised worker process
http    an HTTP client, closed after the test
redis   a client on the session's Redis, closed after the test
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from tests.support.redis_server import redis_client

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


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def redis(system: Settings) -> AsyncIterator[Any]:
    async with redis_client(system) as client:
        yield client
