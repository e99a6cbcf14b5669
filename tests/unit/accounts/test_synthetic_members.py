"""The seeder's synthetic members, without a database."""

from __future__ import annotations

import pytest

from bookvault.accounts.seed import synthetic_members


def test_same_seed_same_members_other_seed_other_members() -> None:
    assert list(synthetic_members(300, seed=7)) == list(synthetic_members(300, seed=7))
    assert list(synthetic_members(300, seed=7)) != list(synthetic_members(300, seed=8))


def test_ids_emails_and_tiers() -> None:
    members = list(synthetic_members(2_000, seed=1))
    assert [m.id for m in members] == list(range(1, 2_001))
    assert len({m.email.lower() for m in members}) == 2_000
    assert sum(m.tier == "vip" for m in members) == 100  # exactly 5%
    assert all(m.opening_cents >= 0 and m.opening_cents % 100 == 0 for m in members)
    assert 0 < sum(m.opening_cents > 0 for m in members) < 2_000
    assert all(m.opened_at > m.created_at for m in members)
    assert [m.created_at for m in members] == sorted(m.created_at for m in members)


def test_zero_members_is_fine_and_negative_is_refused() -> None:
    assert list(synthetic_members(0, seed=1)) == []
    with pytest.raises(ValueError, match="must not be negative"):
        list(synthetic_members(-1, seed=1))
