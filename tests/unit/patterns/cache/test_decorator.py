"""Cache-aside as a decorator, and read-through, keep their types."""

from __future__ import annotations

from typing import assert_type

import msgspec

from bookvault.patterns.cache import Cache, CachedFunction, MemoryBackend, ReadThrough
from bookvault.patterns.clock import FakeClock


class Book(msgspec.Struct, frozen=True):
    id: int
    title: str


async def test_a_decorated_function_is_cached_per_key_and_keeps_its_signature(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    books = Cache("books", Book, backend, clock=clock)
    calls: list[int] = []

    @books.cached(key=lambda book_id, *, edition=1: f"{book_id}:{edition}")
    async def book(book_id: int, *, edition: int = 1) -> Book | None:
        calls.append(book_id)
        return Book(book_id, f"edition {edition}")

    assert isinstance(book, CachedFunction)
    first = await book(7)
    assert_type(first, Book | None)
    assert first == Book(7, "edition 1")
    assert await book(7) == first
    assert await book(7, edition=2) == Book(7, "edition 2")
    assert calls == [7, 7]
    assert book.key(7, edition=2) == "7:2"
    assert book.__name__ == "book"

    await book.invalidate(7)
    await book(7)
    assert calls == [7, 7, 7]

    # The parameters are checked: a str where an int belongs is a type error.
    await book("7")  # type: ignore[arg-type]


async def test_the_default_key_names_the_function_and_its_arguments(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    books = Cache("books", Book, backend, clock=clock)

    @books.cached()
    async def by_title(title: str, limit: int = 10) -> Book | None:
        return Book(1, title)

    key = by_title.key("Dune", limit=3)
    assert key.endswith("by_title:Dune:limit=3")
    assert by_title.key("Dune") != by_title.key("Emma")


async def test_read_through_owns_the_loader(backend: MemoryBackend, clock: FakeClock) -> None:
    loads: list[str] = []

    async def load(key: str) -> Book | None:
        loads.append(key)
        return Book(int(key), "t") if key != "0" else None

    books = ReadThrough(Cache("books", Book, backend, clock=clock), load)
    got = await books.get("3")
    assert_type(got, Book | None)
    assert got == Book(3, "t")
    assert await books.get("3") == Book(3, "t")
    assert await books.get("0") is None
    assert await books.get("0") is None
    assert loads == ["3", "0"]
    await books.invalidate("3")
    await books.get("3")
    assert loads == ["3", "0", "3"]
