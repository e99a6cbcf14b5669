"""Deterministic synthetic books for demos and benchmarks.

`seed_books` REPLACES the catalog: every book and every reservation is deleted
first, and ids restart at 1, so one seed always gives the same books under the
same ids (benchmarks pick ids 1..N). Re-running is safe and yields the same data.
The replacement happens in one transaction: readers see the old catalog until
the new one is complete.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from decimal import Decimal

import asyncpg

from bookvault.catalog import repo
from bookvault.catalog.isbn import isbn13_check_digit

__all__ = ["GENRES", "seed_books"]

CHUNK_SIZE = 10_000
_COLUMNS = (
    "isbn",
    "title",
    "author",
    "genre",
    "published_year",
    "total_copies",
    "available_copies",
    "rating",
)

GENRES = (
    "Biography",
    "Children",
    "Classics",
    "Comics",
    "Cookery",
    "Crime",
    "Fantasy",
    "Health",
    "History",
    "Horror",
    "Humour",
    "Mystery",
    "Philosophy",
    "Poetry",
    "Romance",
    "Science",
    "Science Fiction",
    "Self-Help",
    "Thriller",
    "Travel",
)

_ADJECTIVES = (
    "Silent", "Hidden", "Last", "Broken", "Golden", "Forgotten", "Burning", "Distant", "Crimson",
    "Hollow", "Endless", "Secret", "Quiet", "Wild", "Lost", "Frozen", "Bright", "Dark", "Ancient",
    "Restless", "Northern", "Velvet", "Iron", "Glass", "Midnight", "Summer", "Winter", "Paper",
)  # fmt: skip
_NOUNS = (
    "River", "Garden", "Empire", "Letter", "Harbour", "Kingdom", "Orchard", "Shadow", "Mountain",
    "Library", "Lighthouse", "Journey", "Voyage", "Promise", "Machine", "Island", "Forest", "City",
    "Mirror", "Storm", "Map", "Crown", "Clock", "Bridge", "Station", "House", "Sea", "Tide", "Star",
)  # fmt: skip
_FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Beatrix", "Carlos", "Chen", "Clara", "Dmitri", "Elena", "Farah",
    "Grace", "Hiro", "Ingrid", "Jonas", "Kofi", "Lena", "Marcus", "Nadia", "Omar", "Priya",
    "Quentin", "Rosa", "Samuel", "Tove", "Umar", "Vera", "Wen", "Yusuf", "Zara", "Leo",
)  # fmt: skip
_LAST_NAMES = (
    "Abbott", "Bergman", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi",
    "Silva", "Tanaka", "Underwood", "Varga", "Whitfield", "Xu", "Yilmaz", "Zimmermann", "Reed",
)  # fmt: skip
_INITIALS = "ABCDEFGHIJKLMNOPRSTVW"
_TITLE_SHAPES = (
    "The {adjective} {noun}",
    "{noun} of the {adjective} {noun2}",
    "A {noun} in {adjective} Light",
    "The {noun} and the {noun2}",
    "{adjective} {noun}s",
    "Beyond the {adjective} {noun}",
    "The {noun2} of {name}",
)

Record = tuple[str, str, str, str, int, int, int, Decimal | None]


def _isbn_bodies(rng: random.Random) -> Iterator[str]:
    """Distinct 9-digit ISBN bodies: a walk with a stride coprime to 10**9 visits
    every body once before repeating, so no two seeded books share an ISBN."""
    position = rng.randrange(10**9)
    stride = rng.randrange(10**8, 10**9) | 1
    while stride % 5 == 0:
        stride += 2
    while True:
        yield f"{position:09d}"
        position = (position + stride) % 10**9


def _books(rng: random.Random, count: int) -> Iterator[Record]:
    bodies = _isbn_bodies(rng)
    # A few thousand authors, so filtering by author finds shelves, not single books.
    authors = [
        f"{rng.choice(_FIRST_NAMES)} {rng.choice(_INITIALS)}. {rng.choice(_LAST_NAMES)}"
        for _ in range(max(1, min(5_000, count // 20)))
    ]
    for _ in range(count):
        first12 = "978" + next(bodies)
        title = rng.choice(_TITLE_SHAPES).format(
            adjective=rng.choice(_ADJECTIVES),
            noun=rng.choice(_NOUNS),
            noun2=rng.choice(_NOUNS),
            name=rng.choice(_FIRST_NAMES),
        )
        copies = rng.randint(1, 10)
        # One book in ten has no rating yet; the rest lean towards the upper half, as real ones do.
        rating = None if rng.random() < 0.1 else Decimal(f"{min(5.0, max(0.0, rng.gauss(3.8, 0.7))):.2f}")
        yield (
            first12 + isbn13_check_digit(first12),
            title,
            rng.choice(authors),
            rng.choice(GENRES),
            rng.randint(1900, 2025),
            copies,
            copies,
            rating,
        )


_PROJECT_ALL = """
    INSERT INTO book_search (book_id, document)
    SELECT id, book_search_document(title, author, genre) FROM books"""


async def seed_books(dsn: str, count: int, seed: int, progress: Callable[[int, int], None]) -> int:
    """Replace the catalog at `dsn` with `count` books made from `seed`; return `count`.

    Rows go in with COPY, `CHUNK_SIZE` at a time, calling `progress(done, count)`
    after each chunk (and once with 0 before the first).
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("TRUNCATE reservations, book_search, books RESTART IDENTITY")
            progress(0, count)
            books = _books(rng, count)
            done = 0
            while done < count:
                chunk = [next(books) for _ in range(min(CHUNK_SIZE, count - done))]
                await conn.copy_records_to_table("books", records=chunk, columns=_COLUMNS)
                done += len(chunk)
                progress(done, count)
            # COPY bypasses the repository, so the read models are built here, in the
            # same transaction: nobody sees books without their search rows.
            await conn.execute(_PROJECT_ALL)
        await repo.refresh_genre_stats(conn)
        # Fresh statistics, so the first queries after a seed get good plans.
        await conn.execute("ANALYZE books, book_search")
    finally:
        await conn.close()
    return count
