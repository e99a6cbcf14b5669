"""The idempotency guard's decisions, on an in-memory store that keeps the
protocol's promises (lock per scope, outcomes kept until they expire)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from bookvault.patterns.idempotency import (
    Idempotency,
    KeyInFlight,
    KeyReused,
    MalformedKey,
    MissingKey,
    Scope,
    StoredKey,
    StoredResponse,
    fingerprint,
    lock_id,
    parse_key,
)

SCOPE = Scope("member:42", "POST", "/members/42/payments", "key-abcdefgh")
CREATED = StoredResponse(201, (("content-type", "application/json"),), b'{"id":1}')


@dataclasses.dataclass
class MemoryStore:
    locked: set[Scope] = dataclasses.field(default_factory=set)
    saved: dict[Scope, StoredKey] = dataclasses.field(default_factory=dict)
    lock_timeouts: list[timedelta] = dataclasses.field(default_factory=list)

    async def try_lock(self, scope: Scope, lock_timeout: timedelta) -> bool:
        self.lock_timeouts.append(lock_timeout)
        if scope in self.locked:
            return False
        self.locked.add(scope)
        return True

    async def find(self, scope: Scope) -> StoredKey | None:
        return self.saved.get(scope)

    async def save(self, scope: Scope, fingerprint: str, response: StoredResponse, ttl: timedelta) -> None:
        assert ttl == timedelta(hours=24)
        self.saved[scope] = StoredKey(fingerprint, response)

    def commit(self) -> None:
        self.locked.clear()


class Handler:
    def __init__(self, response: StoredResponse = CREATED) -> None:
        self.calls = 0
        self.response = response

    async def __call__(self) -> StoredResponse:
        self.calls += 1
        return self.response


@pytest.mark.parametrize(
    "key", ["abcdefgh", "x" * 255, "3f1c2b9e-6d7a-4e1f-9a0b-1c2d3e4f5a6b", "pay:42/#1!~"]
)
def test_good_keys_are_kept_as_sent(key: str) -> None:
    assert parse_key(key) == key


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (None, MissingKey, "is required"),
        ("", MissingKey, "is required"),
        ("short", MalformedKey, "8 to 255"),
        ("x" * 256, MalformedKey, "8 to 255"),
        ("with space", MalformedKey, "no spaces"),
        ("tab\there!", MalformedKey, "visible ASCII"),
        ("clé-unique-1", MalformedKey, "visible ASCII"),
    ],
)
def test_bad_keys_are_400_and_say_what_a_good_key_is(
    raw: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        parse_key(raw)
    assert getattr(caught.value, "status", None) == 400


def test_fingerprints_and_locks_depend_on_the_whole_scope() -> None:
    other_path = dataclasses.replace(SCOPE, path="/members/43/payments")
    assert fingerprint(SCOPE, b"{}") == fingerprint(SCOPE, b"{}")
    assert fingerprint(SCOPE, b"{}") != fingerprint(SCOPE, b'{"a":1}')
    assert fingerprint(SCOPE, b"{}") != fingerprint(other_path, b"{}")
    scopes = [SCOPE, other_path, dataclasses.replace(SCOPE, principal="admin:1")]
    assert len({lock_id(s) for s in scopes}) == 3
    assert all(-(2**63) <= lock_id(s) < 2**63 for s in scopes)


async def test_first_use_runs_the_handler_and_stores_its_response() -> None:
    store, handler = MemoryStore(), Handler()
    outcome = await Idempotency().run(store, SCOPE, "fp", handler)
    assert outcome.response == CREATED
    assert not outcome.replayed
    assert handler.calls == 1
    assert store.saved[SCOPE] == StoredKey("fp", CREATED)


async def test_a_repeat_replays_without_running_the_handler_again() -> None:
    store, handler, guard = MemoryStore(), Handler(), Idempotency()
    await guard.run(store, SCOPE, "fp", handler)
    store.commit()
    again = await guard.run(store, SCOPE, "fp", handler)
    assert again.replayed
    assert again.response == CREATED
    assert handler.calls == 1


async def test_a_stored_error_outcome_is_replayed_too() -> None:
    missing = StoredResponse(404, (("content-type", "application/problem+json"),), b'{"status":404}')
    store, guard = MemoryStore(), Idempotency()
    await guard.run(store, SCOPE, "fp", Handler(missing))
    store.commit()
    handler = Handler()
    again = await guard.run(store, SCOPE, "fp", handler)
    assert (again.response, again.replayed, handler.calls) == (missing, True, 0)


async def test_a_different_request_under_a_used_key_is_422() -> None:
    store, guard = MemoryStore(), Idempotency()
    await guard.run(store, SCOPE, "fp", Handler())
    store.commit()
    handler = Handler()
    with pytest.raises(KeyReused) as caught:
        await guard.run(store, SCOPE, "another", handler)
    assert caught.value.status == 422
    assert handler.calls == 0
    with pytest.raises(KeyReused):
        guard.replay(store.saved[SCOPE], "another")


async def test_a_repeat_while_the_first_runs_is_409_with_retry_after() -> None:
    store = MemoryStore(locked={SCOPE})
    handler = Handler()
    with pytest.raises(KeyInFlight) as caught:
        await Idempotency(retry_after_s=3, lock_timeout=timedelta(seconds=5)).run(store, SCOPE, "fp", handler)
    assert (caught.value.status, caught.value.retry_after_s) == (409, 3)
    assert store.lock_timeouts == [timedelta(seconds=5)]
    assert handler.calls == 0


async def test_a_failing_handler_stores_nothing_so_a_retry_runs_again() -> None:
    store, guard = MemoryStore(), Idempotency()

    async def boom() -> StoredResponse:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        await guard.run(store, SCOPE, "fp", boom)
    store.commit()  # the transaction ended (rolled back): the lock is gone
    assert SCOPE not in store.saved
    assert (await guard.run(store, SCOPE, "fp", Handler())).replayed is False


def test_nothing_stored_is_no_replay() -> None:
    assert Idempotency().replay(None, "fp") is None


@pytest.mark.parametrize(
    "kwargs",
    [{"ttl": timedelta(0)}, {"lock_timeout": timedelta(seconds=-1)}, {"retry_after_s": -1}],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="positive"):
        Idempotency(**kwargs)  # type: ignore[arg-type]
