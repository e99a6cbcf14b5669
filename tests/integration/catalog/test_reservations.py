"""The internal reservation API the borrowing service lends copies through.

Its promises: `available_copies` never goes below zero, active reservations
never outnumber copies, reserve and release are idempotent per reservation id,
and a release that overtakes its reserve fences that reserve off.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import asyncpg
import pytest

from bookvault.catalog.errors import CopiesOnLoan, NoCopyAvailable, ReservationFenced
from bookvault.catalog.schemas import BookChanges
from bookvault.catalog.service import CatalogService

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import Catalog

pytestmark = pytest.mark.stack

Shelve = Callable[[int], Awaitable[int]]


async def available(catalog: Catalog, book_id: int) -> int:
    copies: int = (await catalog.book(book_id))["available_copies"]
    return copies


# --- one caller -------------------------------------------------------------------


async def test_a_reservation_takes_one_copy_and_a_retry_takes_none(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=3)
    reservation = catalog.new_reservation_id()
    first = await catalog.reserve(book["id"], reservation)
    assert first.status == 201
    assert first.json() == {"reservation_id": reservation, "book_id": book["id"], "state": "reserved"}
    retry = await catalog.reserve(book["id"], reservation)
    assert retry.status == 200
    assert retry.json() == first.json()
    assert await available(catalog, book["id"]) == 2


async def test_no_copy_left_is_a_conflict(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=1)
    assert (await catalog.reserve(book["id"], catalog.new_reservation_id())).status == 201
    refused = await catalog.reserve(book["id"], catalog.new_reservation_id())
    assert refused.status == 409
    assert refused.detail == f"no copy of book {book['id']} is available"
    assert await available(catalog, book["id"]) == 0


async def test_a_book_without_copies_cannot_be_reserved(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=0)
    assert (await catalog.reserve(book["id"], catalog.new_reservation_id())).status == 409


async def test_an_unknown_book_is_404_and_leaves_nothing_behind(catalog: Catalog) -> None:
    reservation = catalog.new_reservation_id()
    missing = await catalog.reserve(9000000000000000000, reservation)
    assert missing.status == 404
    assert missing.detail == "book 9000000000000000000 does not exist"
    # The id was not consumed: it can still reserve a real book.
    book = await catalog.create(total_copies=1)
    assert (await catalog.reserve(book["id"], reservation)).status == 201


async def test_release_returns_the_copy_once(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=2)
    reservation = catalog.new_reservation_id()
    await catalog.reserve(book["id"], reservation)
    assert await available(catalog, book["id"]) == 1
    for _ in range(3):
        reply = await catalog.release(reservation)
        assert reply.status == 200
        assert reply.json() == {"reservation_id": reservation, "book_id": book["id"], "state": "released"}
        assert await available(catalog, book["id"]) == 2


async def test_a_released_id_cannot_reserve_again(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=2)
    reservation = catalog.new_reservation_id()
    await catalog.reserve(book["id"], reservation)
    await catalog.release(reservation)
    again = await catalog.reserve(book["id"], reservation)
    assert again.status == 409
    assert "already released" in again.detail
    assert await available(catalog, book["id"]) == 2


async def test_a_release_that_overtakes_its_reserve_fences_it_off(catalog: Catalog) -> None:
    # Borrowing gave up on a reserve that timed out and compensated at once; the
    # reserve itself arrives later. It must not take a copy nobody would return.
    book = await catalog.create(total_copies=1)
    reservation = catalog.new_reservation_id()
    tombstone = await catalog.release(reservation)
    assert tombstone.status == 200
    assert tombstone.json() == {"reservation_id": reservation, "book_id": None, "state": "released"}
    late = await catalog.reserve(book["id"], reservation)
    assert late.status == 409
    assert await available(catalog, book["id"]) == 1
    assert (await catalog.release(reservation)).status == 200


async def test_a_reservation_id_holds_one_book_only(catalog: Catalog) -> None:
    first, second = await catalog.create(total_copies=1), await catalog.create(total_copies=1)
    reservation = catalog.new_reservation_id()
    await catalog.reserve(first["id"], reservation)
    other = await catalog.reserve(second["id"], reservation)
    assert other.status == 409
    assert f"holds a copy of book {first['id']}" in other.detail
    assert await available(catalog, second["id"]) == 1


async def test_ids_with_unusual_characters_work_end_to_end(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=1)
    reservation = f"loan/{catalog.unique_word()} #1 ü"
    assert (await catalog.reserve(book["id"], reservation)).status == 201
    reply = await catalog.release(quote(reservation, safe=""))  # as borrowing's client sends it
    assert reply.status == 200, reply.body
    assert reply.json()["reservation_id"] == reservation
    assert await available(catalog, book["id"]) == 1


# --- who may call -----------------------------------------------------------------


async def test_only_the_service_role_reaches_the_internal_api(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=1)
    for token, status in [(None, 401), (catalog.member(), 403), (catalog.admin(), 403)]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        reserve = await catalog.call(
            "POST",
            f"/internal/books/{book['id']}/reservations",
            payload={"reservation_id": catalog.new_reservation_id()},
            headers=headers,
        )
        release = await catalog.call(
            "POST", f"/internal/reservations/{catalog.new_reservation_id()}/release", headers=headers
        )
        assert (reserve.status, release.status) == (status, status)
    assert await available(catalog, book["id"]) == 1


async def test_the_internal_api_is_not_under_the_public_prefix(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=1)
    reply = await catalog.call(
        "POST",
        f"/books/{book['id']}/reservations",
        token=catalog.borrowing(),
        payload={"reservation_id": "x"},
    )
    assert reply.status in (404, 405)


@pytest.mark.parametrize(
    ("payload", "status", "detail"),
    [
        ({"reservation_id": ""}, 422, "length >= 1"),
        ({"reservation_id": "r" * 101}, 422, "length <= 100"),
        ({"reservation_id": "tab\there"}, 422, "must not contain control characters"),
        ({"reservation_id": 7}, 422, "Expected `str`, got `int`"),
        ({"reservation_id": "ok", "copies": 2}, 422, "unknown field `copies`"),
        ({}, 422, "missing required field `reservation_id`"),
        (b"", 400, "a JSON body is required"),
        (b'{"reservation_id": ', 400, "malformed JSON"),
    ],
)
async def test_bad_reservation_requests_say_why(
    catalog: Catalog, payload: Any, status: int, detail: str
) -> None:
    book = await catalog.create(total_copies=1)
    raw = {"data": payload} if isinstance(payload, bytes) else {"payload": payload}
    reply = await catalog.call(
        "POST", f"/internal/books/{book['id']}/reservations", token=catalog.borrowing(), **raw
    )
    assert reply.status == status
    assert detail in reply.detail
    assert await available(catalog, book["id"]) == 1


async def test_bad_release_ids_are_400(catalog: Catalog) -> None:
    too_long = await catalog.release("r" * 101)
    empty = await catalog.call("POST", "/internal/reservations//release", token=catalog.borrowing())
    control = await catalog.release("nul%00id")
    assert (too_long.status, empty.status, control.status) == (400, 400, 400)
    assert "must be 1 to 100 characters" in too_long.detail
    assert "control characters" in control.detail


# --- many callers at once ---------------------------------------------------------


async def test_fifty_borrowers_race_for_the_last_copy_over_http(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=1)
    replies = await asyncio.gather(
        *(catalog.reserve(book["id"], catalog.new_reservation_id()) for _ in range(50))
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [201] + [409] * 49
    assert await available(catalog, book["id"]) == 0


async def test_fifty_reservations_of_a_one_copy_book_give_exactly_one(
    catalog_service: CatalogService, catalog_pool: asyncpg.Pool[asyncpg.Record], shelve: Shelve
) -> None:
    book_id = await shelve(1)
    ids = [f"race-{book_id}-{n}" for n in range(50)]
    outcomes = await asyncio.gather(
        *(catalog_service.reserve(book_id, reservation) for reservation in ids), return_exceptions=True
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    lost = [outcome for outcome in outcomes if isinstance(outcome, NoCopyAvailable)]
    assert len(won) == 1
    assert len(lost) == 49
    assert won[0][1] is True
    held = await catalog_pool.fetchval(
        "SELECT count(*) FROM reservations WHERE book_id = $1 AND state = 'reserved'", book_id
    )
    assert held == 1
    assert (await catalog_service.get_book(book_id)).available_copies == 0


async def test_concurrent_retries_of_one_reservation_take_one_copy(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=3)
    reservation = catalog.new_reservation_id()
    replies = await asyncio.gather(*(catalog.reserve(book["id"], reservation) for _ in range(20)))
    assert sorted(reply.status for reply in replies) == [200] * 19 + [201]
    assert await available(catalog, book["id"]) == 2


async def test_reserves_and_releases_in_any_order_return_every_copy(
    catalog_service: CatalogService, catalog_pool: asyncpg.Pool[asyncpg.Record], shelve: Shelve
) -> None:
    # Each loan's reserve and its compensating release are sent at the same time,
    # in shuffled order: whichever wins, no copy may stay taken.
    copies = 10
    book_id = await shelve(copies)
    ids = [f"saga-{book_id}-{n}" for n in range(40)]
    calls: list[Awaitable[object]] = [catalog_service.reserve(book_id, r) for r in ids]
    calls += [catalog_service.release(r) for r in ids]
    random.shuffle(calls)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    # A reserve may find no copy left, or find its id already released; nothing else.
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(error, NoCopyAvailable | ReservationFenced) for error in errors), errors
    assert (await catalog_service.get_book(book_id)).available_copies == copies
    held = await catalog_pool.fetchval(
        "SELECT count(*) FROM reservations WHERE id = ANY($1::text[]) AND state = 'reserved'", ids
    )
    assert held == 0


async def test_copy_counts_stay_consistent_while_admins_change_them(
    catalog_service: CatalogService, catalog_pool: asyncpg.Pool[asyncpg.Record], shelve: Shelve
) -> None:
    book_id = await shelve(5)
    calls: list[Awaitable[object]] = [
        catalog_service.reserve(book_id, f"edit-{book_id}-{n}") for n in range(30)
    ]
    calls += [catalog_service.update_book(book_id, BookChanges(total_copies=n % 8)) for n in range(10)]
    random.shuffle(calls)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(error, NoCopyAvailable | CopiesOnLoan) for error in errors), errors
    book = await catalog_service.get_book(book_id)
    held = await catalog_pool.fetchval(
        "SELECT count(*) FROM reservations WHERE book_id = $1 AND state = 'reserved'", book_id
    )
    assert book.available_copies == book.total_copies - held
    assert book.available_copies >= 0
