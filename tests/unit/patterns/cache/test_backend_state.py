"""The fencing state a backend keeps per key (memory backend; the integration tests
run the same table against Redis)."""

from __future__ import annotations

from bookvault.patterns.cache import MemoryBackend
from bookvault.patterns.clock import FakeClock


async def test_claim_creates_a_version_once_and_hands_the_lease_to_one_caller(backend: MemoryBackend) -> None:
    first = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    second = await backend.claim("ns", "k", version="v2", lease="b", lease_ttl=5)
    assert (first.value, first.version, first.leased) == (None, "v1", True)
    assert (second.value, second.version, second.leased) == (None, "v1", False)


async def test_a_lease_expires_so_a_crashed_holder_cannot_block_forever(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    clock.advance(5)
    assert (await backend.claim("ns", "k", version="v2", lease="b", lease_ttl=5)).leased


async def test_a_fill_lands_only_under_the_version_it_read(backend: MemoryBackend) -> None:
    claim = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    await backend.invalidate("ns", "k", version="v2")
    assert not await backend.fill("ns", "k", b"old", 60, version=claim.version, lease="a")
    assert await backend.get("ns", "k") is None
    assert await backend.fill("ns", "k", b"new", 60, version="v2", lease=None)
    assert await backend.get("ns", "k") == b"new"
    # The refused fill still gave its lease back.
    assert await backend.try_lease("ns", "k", lease="c", lease_ttl=5)


async def test_staged_write_behind_blocks_fills_until_settled(backend: MemoryBackend) -> None:
    claim = await backend.claim("ns", "k", version="v1", lease="a", lease_ttl=5)
    assert await backend.stage("ns", "k", b"queued", 60, version="v2", write_id="100-0")
    await backend.invalidate("ns", "k", version="v3")  # e.g. evicted; the database is behind
    assert not await backend.fill("ns", "k", b"db-old", 60, version="v3", lease=None)
    await backend.settle("ns", "k", version="v4", write_id="100-0")
    assert await backend.fill("ns", "k", b"db-new", 60, version="v3", lease=None)
    assert claim.version == "v1"


async def test_an_older_write_cannot_be_staged_over_a_newer_one(backend: MemoryBackend) -> None:
    assert await backend.stage("ns", "k", b"second", 60, version="v2", write_id="100-1")
    assert not await backend.stage("ns", "k", b"first", 60, version="v3", write_id="100-0")
    assert await backend.get("ns", "k") == b"second"


async def test_settling_a_write_the_cache_never_saw_invalidates_the_key(backend: MemoryBackend) -> None:
    await backend.write("ns", "k", b"before", 60, version="v1")
    await backend.settle("ns", "k", version="v2", write_id="100-0")  # writer died before staging
    assert await backend.get("ns", "k") is None


async def test_settling_an_older_write_leaves_a_newer_staged_one(backend: MemoryBackend) -> None:
    await backend.stage("ns", "k", b"newer", 60, version="v1", write_id="200-0")
    await backend.settle("ns", "k", version="v2", write_id="100-0")
    assert await backend.get("ns", "k") == b"newer"
