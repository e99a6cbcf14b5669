"""Load scenarios from PERFORMANCE.md, as picklable request sources.

Each scenario is a frozen dataclass (so it crosses into the generator process)
that builds its state lazily on first use there. All traffic goes through the
gateway, with many member tokens so per-member limits are realistic.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import uuid

import msgspec

from bookvault.bench.http1 import encode_request
from bookvault.bench.zipf import ZipfSampler

__all__ = ["BookDetailScenario", "BorrowScenario", "PaymentsScenario", "ReadHeavyScenario"]

GENRES = ("Fantasy", "Mystery", "Science Fiction", "Romance", "History", "Poetry")
SEARCH_TERMS = ("winter", "archive", "river", "garden", "shadow", "empire", "letters", "night")


@dataclasses.dataclass
class ReadHeavyScenario:
    """95% GET /books/{id} (Zipf 1.1), 4% list by genre, 1% search; a share of
    requests carry a member token, the rest are anonymous."""

    host: str
    book_ids: list[int]
    member_tokens: list[str]
    genres: tuple[str, ...] = GENRES
    authenticated_share: float = 0.3
    seed: int = 11
    _state: _ReadHeavyState | None = dataclasses.field(default=None, repr=False)

    def __call__(self) -> bytes:
        if self._state is None:
            self._state = _ReadHeavyState(self)
        return self._state.next()

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_state"] = None  # built again in the generator process
        return state


class _ReadHeavyState:
    def __init__(self, spec: ReadHeavyScenario) -> None:
        self.random = random.Random(spec.seed)
        self.zipf = ZipfSampler(spec.book_ids, 1.1, spec.seed)
        self.host = spec.host
        self.genres = spec.genres
        self.auth_share = spec.authenticated_share
        self.tokens = [{"Authorization": f"Bearer {t}"} for t in spec.member_tokens] or [{}]

    def next(self) -> bytes:
        draw = self.random.random()
        if draw < 0.95:
            target = f"/api/catalog/v1/books/{self.zipf.sample()}"
        elif draw < 0.99:
            target = (
                f"/api/catalog/v1/books?genre={self.random.choice(self.genres).replace(' ', '%20')}&limit=20"
            )
        else:
            target = f"/api/catalog/v1/search?q={self.random.choice(SEARCH_TERMS)}&limit=20"
        headers = {"Accept-Encoding": "gzip, br, zstd"}
        if self.random.random() < self.auth_share:
            headers.update(self.random.choice(self.tokens))
        return encode_request("GET", self.host, target, headers)


@dataclasses.dataclass
class PaymentsScenario:
    """POST payments with unique Idempotency-Keys; `retry_share` of requests
    deliberately repeat an earlier request (same member, key and body)."""

    host: str
    member_tokens: dict[int, str]
    retry_share: float = 0.10
    seed: int = 13
    _state: _PaymentsState | None = dataclasses.field(default=None, repr=False)

    def __call__(self) -> bytes:
        if self._state is None:
            self._state = _PaymentsState(self)
        return self._state.next()

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_state"] = None
        return state


class _PaymentsState:
    _RECENT = 1000

    def __init__(self, spec: PaymentsScenario) -> None:
        if not spec.member_tokens:
            raise ValueError("the payments scenario needs member tokens")
        self.random = random.Random(spec.seed)
        self.host = spec.host
        self.retry_share = spec.retry_share
        self.members = list(spec.member_tokens.items())
        self.recent: list[bytes] = []
        self.run_id = uuid.uuid4().hex[:12]
        self.counter = itertools.count()

    def next(self) -> bytes:
        if self.recent and self.random.random() < self.retry_share:
            return self.random.choice(self.recent)
        member_id, token = self.random.choice(self.members)
        body = msgspec.json.encode({"amount_cents": self.random.randint(100, 5000), "currency": "USD"})
        request = encode_request(
            "POST",
            self.host,
            f"/api/accounts/v1/members/{member_id}/payments",
            {
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f"bench-{self.run_id}-{next(self.counter)}",
                "Content-Type": "application/json",
            },
            body,
        )
        if len(self.recent) < self._RECENT:
            self.recent.append(request)
        else:
            self.recent[self.random.randrange(self._RECENT)] = request
        return request


@dataclasses.dataclass
class BookDetailScenario:
    """Anonymous GET /books/{id} only (Zipf 1.1): the one endpoint every stack
    in the comparison serves, including the conventional reference."""

    host: str
    book_ids: list[int]
    seed: int = 17
    _zipf: ZipfSampler | None = dataclasses.field(default=None, repr=False)

    def __call__(self) -> bytes:
        if self._zipf is None:
            self._zipf = ZipfSampler(self.book_ids, 1.1, self.seed)
        return encode_request("GET", self.host, f"/api/catalog/v1/books/{self._zipf.sample()}")

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_zipf"] = None
        return state


@dataclasses.dataclass
class BorrowScenario:
    """Members borrowing popular books (Zipf, so copies run out and 409s are
    part of the load) and returning what they borrowed: the loan ids come back
    in the 201 bodies, which is why this source observes responses."""

    host: str
    book_ids: list[int]
    member_tokens: dict[int, str]
    return_share: float = 0.45
    seed: int = 19
    _state: _BorrowState | None = dataclasses.field(default=None, repr=False)

    def __call__(self) -> bytes:
        return self._live().next()

    def observe(self, status: int, body: bytes) -> None:
        if status == 201:
            self._live().remember(body)

    def _live(self) -> _BorrowState:
        if self._state is None:
            self._state = _BorrowState(self)
        return self._state

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_state"] = None
        return state


class _Loan(msgspec.Struct):
    id: int
    member_id: int


class _BorrowState:
    def __init__(self, spec: BorrowScenario) -> None:
        if not spec.member_tokens:
            raise ValueError("the borrow scenario needs member tokens")
        self.random = random.Random(spec.seed)
        self.zipf = ZipfSampler(spec.book_ids, 1.1, spec.seed)
        self.host = spec.host
        self.tokens = spec.member_tokens
        self.members = list(spec.member_tokens)
        self.return_share = spec.return_share
        self.active: list[_Loan] = []
        self.decoder = msgspec.json.Decoder(_Loan)

    def remember(self, body: bytes) -> None:
        try:
            self.active.append(self.decoder.decode(body))
        except msgspec.DecodeError:
            return

    def next(self) -> bytes:
        if self.active and self.random.random() < self.return_share:
            loan = self.active.pop(self.random.randrange(len(self.active)))
            return encode_request(
                "POST",
                self.host,
                f"/api/borrowing/v1/loans/{loan.id}/return",
                {"Authorization": f"Bearer {self.tokens[loan.member_id]}"},
            )
        member = self.random.choice(self.members)
        return encode_request(
            "POST",
            self.host,
            "/api/borrowing/v1/loans",
            {"Authorization": f"Bearer {self.tokens[member]}", "Content-Type": "application/json"},
            msgspec.json.encode({"book_id": self.zipf.sample()}),
        )
