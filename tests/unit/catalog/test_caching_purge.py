"""The purge message the gateway's response cache consumes: its exact shape."""

from __future__ import annotations

import json

from bookvault.catalog.purge import CHANNEL, purge_message


def test_the_purge_names_the_book_and_every_page_that_may_hold_it() -> None:
    assert CHANNEL == "bookvault:purge"
    assert json.loads(purge_message(42)) == {
        "paths": ["/api/catalog/v1/books/42"],
        "prefixes": ["/api/catalog/v1/books?", "/api/catalog/v1/search?", "/api/catalog/v1/stats/"],
    }
