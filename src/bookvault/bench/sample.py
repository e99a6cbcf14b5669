"""A representative book body, the same bytes every reference serves."""

from __future__ import annotations

import msgspec

BOOK_BODY: bytes = msgspec.json.encode(
    {
        "id": 4242,
        "isbn": "9780441013593",
        "title": "The Quiet Archive of Northern Winds",
        "author": "Margarethe Okonkwo-Lindqvist",
        "genre": "Science Fiction",
        "published_year": 1987,
        "total_copies": 7,
        "available_copies": 3,
        "rating": 4.31,
        "updated_at": "2026-11-01T09:30:00+00:00",
    }
)
