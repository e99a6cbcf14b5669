"""The package's surface: exports, configuration errors, key layout."""

from __future__ import annotations

import msgspec
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

import bookvault.patterns.cache as cache_pkg
from bookvault.patterns.cache import (
    Cache,
    CacheConfigError,
    CacheError,
    CachePolicy,
    LocalPolicy,
    MemoryBackend,
    RedisBackend,
    backend_from_url,
)


class Book(msgspec.Struct):
    id: int


def test_all_names_every_public_export() -> None:
    public = {
        name
        for name, value in vars(cache_pkg).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(cache_pkg.__name__ + ".")
    }
    assert public <= set(cache_pkg.__all__)
    assert all(hasattr(cache_pkg, name) for name in cache_pkg.__all__)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ttl": 0}, "ttl"),
        ({"jitter": 1.0}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"negative_ttl": 0}, "negative_ttl"),
        ({"stale_for": -1}, "stale_for"),
        ({"lease_ttl": float("inf")}, "lease_ttl"),
    ],
)
def test_bad_policies_are_refused_when_built(settings: dict[str, float], message: str) -> None:
    with pytest.raises(CacheConfigError, match=message):
        CachePolicy(**settings)


def test_config_errors_are_cache_errors_and_value_errors() -> None:
    with pytest.raises(CacheError):
        LocalPolicy(maxsize=0)
    with pytest.raises(ValueError, match="ttl"):
        LocalPolicy(ttl=-1)


@pytest.mark.parametrize("name", ["", "a{b", "a b"])
def test_cache_names_that_would_break_keys_are_refused(name: str) -> None:
    with pytest.raises(CacheConfigError, match="name"):
        Cache(name, Book, MemoryBackend())


def test_backends_are_chosen_by_url() -> None:
    assert isinstance(backend_from_url("memory://"), MemoryBackend)
    assert isinstance(backend_from_url("redis://127.0.0.1:1/0"), RedisBackend)
    with pytest.raises(CacheConfigError, match="memcached"):
        backend_from_url("memcached://x")


def test_a_decoding_redis_client_is_refused() -> None:
    with pytest.raises(CacheConfigError, match="decode"):
        RedisBackend(Redis(decode_responses=True))


@pytest.mark.parametrize("key", ["42", "a}b", "{x}", "}{", "ünï:cøde", ""])
def test_every_redis_key_of_one_logical_key_is_in_one_cluster_slot(key: str) -> None:
    backend = RedisBackend(Redis())
    family = backend.family("books", key)
    slots = {key_slot(f"{family}:{suffix}".encode()) for suffix in ("v", "n", "l", "w")}
    assert len(slots) == 1
