import pickle
from collections import Counter

import pytest

from bookvault.bench.scenarios import PaymentsScenario, ReadHeavyScenario
from bookvault.bench.zipf import ZipfSampler


def test_zipf_concentrates_reads_on_few_books() -> None:
    sampler = ZipfSampler(list(range(1, 100_001)), exponent=1.1, seed=3)
    draws = Counter(sampler.sample() for _ in range(50_000))
    top_100_share = sum(count for _, count in draws.most_common(100)) / 50_000
    # With s=1.1 over 100k items the 100 most popular carry about half the mass.
    assert top_100_share == pytest.approx(sampler.top_share(100), abs=0.03)
    assert 0.4 < sampler.top_share(100) < 0.7
    assert all(1 <= book <= 100_000 for book in draws)


def test_zipf_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one id"):
        ZipfSampler([])
    with pytest.raises(ValueError, match="positive"):
        ZipfSampler([1], exponent=0)


def test_read_heavy_mix_and_auth_share() -> None:
    scenario = ReadHeavyScenario("gw", list(range(1, 1001)), ["tok-a", "tok-b"], authenticated_share=0.3)
    requests = [scenario() for _ in range(20_000)]
    kinds = Counter(
        "detail" if b" /api/catalog/v1/books/" in r else "list" if b"/books?genre=" in r else "search"
        for r in requests
    )
    assert kinds["detail"] / 20_000 == pytest.approx(0.95, abs=0.01)
    assert kinds["list"] / 20_000 == pytest.approx(0.04, abs=0.01)
    assert kinds["search"] / 20_000 == pytest.approx(0.01, abs=0.005)
    authenticated = sum(b"Authorization: Bearer tok-" in r for r in requests)
    assert authenticated / 20_000 == pytest.approx(0.3, abs=0.02)


def test_scenarios_cross_process_boundaries_without_their_state() -> None:
    scenario = ReadHeavyScenario("gw", [1, 2, 3], [])
    scenario()
    clone = pickle.loads(pickle.dumps(scenario))  # noqa: S301 - our own bytes, as multiprocessing does
    assert clone._state is None
    assert clone().startswith(b"GET /api/catalog/v1/")


def test_payments_use_unique_keys_and_retry_a_tenth() -> None:
    scenario = PaymentsScenario("gw", {7: "t7", 8: "t8"}, retry_share=0.1)
    requests = [scenario() for _ in range(5000)]
    keys = [r.split(b"Idempotency-Key: ")[1].split(b"\r\n")[0] for r in requests]
    repeats = len(keys) - len(set(keys))
    assert repeats / 5000 == pytest.approx(0.1, abs=0.02)
    for request in requests[:50]:
        member = request.split(b"/members/")[1].split(b"/")[0]
        assert f"Bearer t{member.decode()}".encode() in request


def test_borrowers_return_the_loans_they_were_given() -> None:
    from bookvault.bench.scenarios import BorrowScenario

    scenario = BorrowScenario("gw", list(range(1, 50)), {1: "t1", 2: "t2"}, return_share=1.0)
    first = scenario()
    assert first.startswith(b"POST /api/borrowing/v1/loans HTTP/1.1")
    scenario.observe(409, b'{"title": "Conflict"}')
    scenario.observe(201, b'{"id": 77, "member_id": 2, "book_id": 5, "status": "active"}')
    returned = scenario()
    assert returned.startswith(b"POST /api/borrowing/v1/loans/77/return HTTP/1.1")
    assert b"Authorization: Bearer t2" in returned
    assert scenario().startswith(b"POST /api/borrowing/v1/loans HTTP/1.1")  # nothing left to return
