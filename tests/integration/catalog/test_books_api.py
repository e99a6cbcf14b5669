"""Reading and editing books through the running catalog, as readers and admins do."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from bookvault.catalog.isbn import isbn13_check_digit

if TYPE_CHECKING:
    from tests.integration.catalog.conftest import Catalog

pytestmark = pytest.mark.stack

BOOK_FIELDS = {
    "id",
    "isbn",
    "title",
    "author",
    "genre",
    "published_year",
    "total_copies",
    "available_copies",
    "rating",
    "updated_at",
}


# --- reading one book -----------------------------------------------------------


async def test_anyone_reads_a_book_in_the_documented_shape(catalog: Catalog) -> None:
    created = await catalog.create(title="Dune", author="Frank Herbert", total_copies=3, rating=4.25)
    reply = await catalog.call("GET", f"/books/{created['id']}")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    book = reply.json()
    assert set(book) == BOOK_FIELDS
    assert book == created
    assert (book["title"], book["total_copies"], book["available_copies"], book["rating"]) == (
        "Dune",
        3,
        3,
        4.25,
    )
    assert datetime.fromisoformat(book["updated_at"]).tzinfo is not None


async def test_a_missing_book_is_a_404_problem(catalog: Catalog) -> None:
    reply = await catalog.call("GET", "/books/9000000000000000000")
    assert reply.status == 404
    assert reply.detail == "book 9000000000000000000 does not exist"
    assert reply.json()["title"] == "Not Found"


@pytest.mark.parametrize("raw_id", ["abc", "0", "-3", "1.5", "99999999999999999999"])
async def test_a_malformed_id_is_a_400(catalog: Catalog, raw_id: str) -> None:
    reply = await catalog.call("GET", f"/books/{raw_id}")
    assert reply.status == 400
    assert "book_id must be a positive integer" in reply.detail


async def test_a_bad_token_is_refused_even_for_a_public_read(catalog: Catalog) -> None:
    book = await catalog.create()
    forged = await catalog.call("GET", f"/books/{book['id']}", token="not.a.jwt")
    expired = await catalog.call("GET", f"/books/{book['id']}", token=catalog.make_token("1", ttl_s=-60))
    assert (forged.status, expired.status) == (401, 401)
    assert "expired" in expired.detail
    assert forged.headers["WWW-Authenticate"].startswith("Bearer")
    member = await catalog.call("GET", f"/books/{book['id']}", token=catalog.member())
    assert member.status == 200


async def test_the_catalog_is_ready_when_its_database_answers(catalog: Catalog) -> None:
    reply = await catalog.call("GET", "/readyz")
    assert reply.status == 200


# --- creating -------------------------------------------------------------------


async def test_admin_creates_a_book_and_gets_its_location(catalog: Catalog) -> None:
    isbn = catalog.new_isbn()
    dashed = f"{isbn[:3]}-{isbn[3:4]}-{isbn[4:8]}-{isbn[8:12]}-{isbn[12]}"
    reply = await catalog.call(
        "POST",
        "/books",
        token=catalog.admin(),
        payload={
            "isbn": dashed,
            "title": "  Middlemarch ",
            "author": "George Eliot",
            "genre": "Classics",
            "published_year": 1871,
            "total_copies": 4,
        },
    )
    assert reply.status == 201, reply.body
    book = reply.json()
    assert reply.headers["Location"] == f"/api/catalog/v1/books/{book['id']}"
    assert book["isbn"] == isbn  # stored without separators
    assert book["title"] == "Middlemarch"
    assert (book["total_copies"], book["available_copies"], book["rating"]) == (4, 4, None)
    assert await catalog.book(book["id"]) == book


async def test_an_isbn10_is_the_same_book_as_its_isbn13(catalog: Catalog) -> None:
    body = f"{random.randrange(10**9):09d}"
    isbn10 = body + "0123456789X"[-sum((10 - i) * int(d) for i, d in enumerate(body)) % 11]
    isbn13 = "978" + body + isbn13_check_digit("978" + body)
    first = await catalog.call(
        "POST", "/books", token=catalog.admin(), payload=_payload(catalog, isbn=isbn10)
    )
    assert first.status == 201, first.body
    assert first.json()["isbn"] == isbn13
    second = await catalog.call(
        "POST", "/books", token=catalog.admin(), payload=_payload(catalog, isbn=isbn13)
    )
    assert second.status == 409
    assert second.detail == f"a book with isbn {isbn13} already exists"


def _payload(catalog: Catalog, **fields: Any) -> dict[str, Any]:
    return {
        "isbn": catalog.new_isbn(),
        "title": "Valid Title",
        "author": "Valid Author",
        "genre": "Valid Genre",
        "published_year": 2000,
        "total_copies": 1,
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "status", "detail"),
    [
        ({"title": ""}, 422, "length >= 1 - at `$.title`"),
        ({"title": "   "}, 422, "title must not be blank"),
        ({"title": "x" * 501}, 422, "length <= 500 - at `$.title`"),
        ({"author": "Eve\x00Null"}, 422, "author must not contain control characters"),
        ({"published_year": 999}, 422, ">= 1000 - at `$.published_year`"),
        ({"published_year": 3000}, 422, "published_year must be"),
        ({"published_year": "2000"}, 422, "Expected `int`, got `str` - at `$.published_year`"),
        ({"total_copies": -1}, 422, ">= 0 - at `$.total_copies`"),
        ({"total_copies": 10**9}, 422, "<= 100000 - at `$.total_copies`"),
        ({"rating": 5.01}, 422, "<= 5.0 - at `$.rating`"),
        ({"rating": -1}, 422, ">= 0.0 - at `$.rating`"),
        ({"isbn": "978-0-306-40615-8"}, 422, "wrong ISBN-13 check digit"),
        ({"isbn": "12345"}, 422, "length >= 10 - at `$.isbn`"),
        ({"available_copies": 3}, 422, "Object contains unknown field `available_copies`"),
    ],
)
async def test_invalid_books_are_refused_with_a_reason(
    catalog: Catalog, fields: dict[str, Any], status: int, detail: str
) -> None:
    reply = await catalog.call("POST", "/books", token=catalog.admin(), payload=_payload(catalog, **fields))
    assert reply.status == status
    assert detail in reply.detail


async def test_a_missing_field_is_named(catalog: Catalog) -> None:
    payload = _payload(catalog)
    del payload["genre"]
    reply = await catalog.call("POST", "/books", token=catalog.admin(), payload=payload)
    assert reply.status == 422
    assert "missing required field `genre`" in reply.detail


async def test_malformed_json_is_a_400(catalog: Catalog) -> None:
    reply = await catalog.call("POST", "/books", token=catalog.admin(), data=b'{"title": ')
    assert reply.status == 400
    assert "malformed JSON" in reply.detail


async def test_only_admins_write(catalog: Catalog) -> None:
    book = await catalog.create()
    writes = [
        ("POST", "/books", _payload(catalog)),
        ("PATCH", f"/books/{book['id']}", {"title": "Stolen"}),
        ("DELETE", f"/books/{book['id']}", None),
    ]
    for method, path, payload in writes:
        anonymous = await catalog.call(method, path, payload=payload)
        member = await catalog.call(method, path, payload=payload, token=catalog.member())
        assert (anonymous.status, member.status) == (401, 403), (method, path)
    assert await catalog.book(book["id"]) == book


# --- updating -------------------------------------------------------------------


async def test_patch_changes_only_what_is_sent(catalog: Catalog) -> None:
    book = await catalog.create(title="Draft Title", rating=3.5)
    reply = await catalog.call(
        "PATCH", f"/books/{book['id']}", token=catalog.admin(), payload={"title": "Final Title"}
    )
    assert reply.status == 200, reply.body
    updated = reply.json()
    assert updated["title"] == "Final Title"
    assert {k: v for k, v in updated.items() if k not in ("title", "updated_at")} == {
        k: v for k, v in book.items() if k not in ("title", "updated_at")
    }
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(book["updated_at"])
    cleared = await catalog.call(
        "PATCH", f"/books/{book['id']}", token=catalog.admin(), payload={"rating": None}
    )
    assert cleared.json()["rating"] is None
    assert await catalog.book(book["id"]) == cleared.json()


async def test_more_copies_become_available_at_once(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=2)
    assert (await catalog.reserve(book["id"], catalog.new_reservation_id())).status == 201
    reply = await catalog.call(
        "PATCH", f"/books/{book['id']}", token=catalog.admin(), payload={"total_copies": 5}
    )
    assert reply.status == 200
    assert (reply.json()["total_copies"], reply.json()["available_copies"]) == (5, 4)


async def test_copies_on_loan_cannot_be_removed(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=3)
    for _ in range(2):
        assert (await catalog.reserve(book["id"], catalog.new_reservation_id())).status == 201
    too_few = await catalog.call(
        "PATCH", f"/books/{book['id']}", token=catalog.admin(), payload={"total_copies": 1}
    )
    assert too_few.status == 409
    assert too_few.detail == f"book {book['id']} has 2 copies on loan; total_copies cannot go below 2"
    just_enough = await catalog.call(
        "PATCH", f"/books/{book['id']}", token=catalog.admin(), payload={"total_copies": 2}
    )
    assert (just_enough.json()["total_copies"], just_enough.json()["available_copies"]) == (2, 0)


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({}, "the body must change at least one of"),
        ({"available_copies": 9}, "unknown field `available_copies`"),
        ({"title": ""}, "length >= 1 - at `$.title`"),
        ({"total_copies": -2}, ">= 0 - at `$.total_copies`"),
        ({"isbn": "not-an-isbn"}, "must be 10 digits"),
    ],
)
async def test_invalid_patches_are_422(catalog: Catalog, payload: dict[str, Any], detail: str) -> None:
    book = await catalog.create()
    reply = await catalog.call("PATCH", f"/books/{book['id']}", token=catalog.admin(), payload=payload)
    assert reply.status == 422
    assert detail in reply.detail
    assert await catalog.book(book["id"]) == book


async def test_patch_to_another_books_isbn_is_a_conflict(catalog: Catalog) -> None:
    first, second = await catalog.create(), await catalog.create()
    reply = await catalog.call(
        "PATCH", f"/books/{second['id']}", token=catalog.admin(), payload={"isbn": first["isbn"]}
    )
    assert reply.status == 409
    assert first["isbn"] in reply.detail


async def test_patch_of_a_missing_book_is_404(catalog: Catalog) -> None:
    reply = await catalog.call(
        "PATCH", "/books/9000000000000000001", token=catalog.admin(), payload={"title": "X"}
    )
    assert reply.status == 404


# --- deleting -------------------------------------------------------------------


async def test_admin_deletes_a_book(catalog: Catalog) -> None:
    book = await catalog.create()
    reply = await catalog.call("DELETE", f"/books/{book['id']}", token=catalog.admin())
    assert (reply.status, reply.body) == (204, b"")
    assert (await catalog.call("GET", f"/books/{book['id']}")).status == 404
    again = await catalog.call("DELETE", f"/books/{book['id']}", token=catalog.admin())
    assert again.status == 404


async def test_a_book_with_copies_on_loan_is_not_deleted(catalog: Catalog) -> None:
    book = await catalog.create(total_copies=2)
    reservation = catalog.new_reservation_id()
    assert (await catalog.reserve(book["id"], reservation)).status == 201
    refused = await catalog.call("DELETE", f"/books/{book['id']}", token=catalog.admin())
    assert refused.status == 409
    assert "1 copies on loan" in refused.detail
    assert (await catalog.book(book["id"]))["available_copies"] == 1
    assert (await catalog.release(reservation)).status == 200
    assert (await catalog.call("DELETE", f"/books/{book['id']}", token=catalog.admin())).status == 204


# --- listing --------------------------------------------------------------------


async def test_pages_walk_a_genre_in_id_order_without_gaps(catalog: Catalog) -> None:
    genre = catalog.unique_word()
    created = [(await catalog.create(genre=genre))["id"] for _ in range(5)]
    await catalog.create(genre=catalog.unique_word())  # another genre stays out

    seen: list[int] = []
    page_sizes: list[int] = []
    query = f"/books?genre={genre}&limit=2"
    while True:
        reply = await catalog.call("GET", query)
        assert reply.status == 200, reply.body
        page = reply.json()
        assert all(set(item) == BOOK_FIELDS and item["genre"] == genre for item in page["items"])
        seen.extend(item["id"] for item in page["items"])
        page_sizes.append(len(page["items"]))
        if page["next_cursor"] is None:
            break
        query = f"/books?genre={genre}&limit=2&cursor={page['next_cursor']}"
    assert seen == created
    assert page_sizes == [2, 2, 1]


async def test_author_and_genre_filter_together(catalog: Catalog) -> None:
    author, genre = f"Ann {catalog.unique_word()}", catalog.unique_word()
    wanted = await catalog.create(author=author, genre=genre)
    await catalog.create(author=author, genre=catalog.unique_word())
    await catalog.create(author=f"Bob {catalog.unique_word()}", genre=genre)
    by_author = (await catalog.call("GET", f"/books?author={author}")).json()
    both = (await catalog.call("GET", f"/books?author={author}&genre={genre}")).json()
    assert len(by_author["items"]) == 2
    assert both == {"items": [wanted], "next_cursor": None}


async def test_the_default_page_holds_twenty(catalog: Catalog) -> None:
    genre = catalog.unique_word()
    for _ in range(21):
        await catalog.create(genre=genre)
    page = (await catalog.call("GET", f"/books?genre={genre}")).json()
    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("limit=0", "limit must be between 1 and 100, got 0"),
        ("limit=101", "limit must be between 1 and 100, got 101"),
        ("limit=ten", "limit must be an integer"),
        ("cursor=42", "cursor is not one this API returned"),
        ("cursor=YjotMQ", "cursor is not one this API returned"),
        ("colour=red", "unknown query parameter(s): colour"),
        ("genre=a&genre=b", "given more than once: genre"),
        ("genre=" + "g" * 65, "genre must be at most 64 characters"),
        ("author=Ann%00Lee", "author must not contain control characters"),
    ],
)
async def test_bad_list_queries_are_400(catalog: Catalog, query: str, detail: str) -> None:
    reply = await catalog.call("GET", f"/books?{query}")
    assert reply.status == 400
    assert detail in reply.detail


# --- search ---------------------------------------------------------------------


async def test_search_finds_title_and_author_words_and_ranks_titles_first(catalog: Catalog) -> None:
    word = catalog.unique_word()
    by_author = await catalog.create(title="Unrelated Things", author=f"Mara {word.capitalize()}")
    by_title = await catalog.create(title=f"The {word.capitalize()} Chronicles", author="Someone Else")
    await catalog.create(title="Nothing To See", author="Nobody Here")
    reply = await catalog.call("GET", f"/search?q={word}")
    assert reply.status == 200, reply.body
    assert reply.json() == {"items": [by_title, by_author]}
    limited = (await catalog.call("GET", f"/search?q={word}&limit=1")).json()
    assert limited == {"items": [by_title]}


async def test_search_understands_phrases_and_stems(catalog: Catalog) -> None:
    word = catalog.unique_word()
    book = await catalog.create(title=f"Gardens of {word}", author="Iris Vale")
    assert (await catalog.call("GET", f"/search?q=garden {word}")).json()["items"] == [book]
    assert (await catalog.call("GET", f'/search?q="{word} gardens"')).json()["items"] == []
    assert (await catalog.call("GET", f"/search?q={word} -gardens")).json()["items"] == []


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("", "q is required"),
        ("q=", "q is required"),
        ("q=%20%20", "q is required"),
        ("q=" + "a" * 201, "q must be at most 200 characters"),
        ("q=dune&limit=500", "limit must be between 1 and 100"),
        ("q=dune&page=2", "unknown query parameter(s): page"),
    ],
)
async def test_bad_searches_are_400(catalog: Catalog, query: str, detail: str) -> None:
    reply = await catalog.call("GET", f"/search?{query}")
    assert reply.status == 400
    assert detail in reply.detail


# --- statistics -----------------------------------------------------------------


async def test_genre_statistics_count_books_copies_and_ratings(catalog: Catalog) -> None:
    genre = catalog.unique_word()
    await catalog.create(genre=genre, total_copies=2, rating=4.0)
    await catalog.create(genre=genre, total_copies=5, rating=4.5)
    await catalog.create(genre=genre, total_copies=1)  # unrated books do not drag the average down
    before = datetime.now(UTC)
    reply = await catalog.call("GET", "/stats/genres")
    assert reply.status == 200
    report = reply.json()
    assert abs(datetime.fromisoformat(report["as_of"]) - before) < timedelta(minutes=1)
    mine = [item for item in report["items"] if item["genre"] == genre]
    assert mine == [{"genre": genre, "total_books": 3, "total_copies": 8, "avg_rating": 4.25}]
    genres = [item["genre"] for item in report["items"]]
    assert genres == sorted(genres)
