import pytest

from bookvault.patterns.cache import CacheConfigError
from bookvault.patterns.cache.lru import LruTtlMap
from bookvault.patterns.clock import FakeClock


def test_holds_at_most_maxsize_and_evicts_the_least_recently_used(clock: FakeClock) -> None:
    lru: LruTtlMap[int] = LruTtlMap(3, clock)
    for n in range(3):
        lru.set(f"k{n}", n, ttl=60)
    assert lru.get("k0") == 0  # k0 is now the most recently used
    lru.set("k3", 3, ttl=60)
    assert len(lru) == 3
    assert lru.get("k1") is None  # the least recently used went
    assert [lru.get(k) for k in ("k0", "k2", "k3")] == [0, 2, 3]
    assert lru.evictions == 1


def test_items_expire_after_their_ttl(clock: FakeClock) -> None:
    lru: LruTtlMap[str] = LruTtlMap(10, clock)
    lru.set("short", "a", ttl=5)
    lru.set("long", "b", ttl=50)
    clock.advance(4.999)
    assert lru.get("short") == "a"
    clock.advance(0.001)
    assert lru.get("short") is None
    assert lru.get("long") == "b"
    assert lru.expires_in("long") == pytest.approx(45.0)
    clock.advance(45)
    assert lru.get("long") is None
    assert len(lru) == 0


def test_a_bound_below_one_is_refused(clock: FakeClock) -> None:
    with pytest.raises(CacheConfigError, match="maxsize"):
        LruTtlMap(0, clock)
