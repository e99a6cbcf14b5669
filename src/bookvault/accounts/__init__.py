"""Accounts: members, balances and the append-only ledger of payments and charges.

    app.py        routes under /api/accounts/v1, auth rules, the lifespan (pool, token codec)
    service.py    the rules: balance arithmetic, idempotency keys and fingerprints, cursors
    repo.py       parameterised SQL; asyncpg errors become `errors.py` errors here
    schemas.py    msgspec request/response bodies (requests refuse unknown fields)
    seed.py       deterministic synthetic members for `bookvault seed`
    migrations/   versioned SQL

Money is integer cents in USD. A payment adds to the balance and a charge subtracts
from it; a negative balance is what the member owes. Every payment or charge is one
ledger row written in the same database transaction as the balance it moves, so the
balance always equals payments minus charges, and `GET .../balance?as_of=` for a
past instant is read from the ledger (an instant in the future gets the balance
now, with `as_of` saying when that was).
"""
