"""Unique, never-reused tokens for versions (fencing) and leases.

A token is a per-process random prefix plus a counter: unique across processes and
cheaper than asking the OS for randomness on every fill. A forked child redraws the
prefix, since it would otherwise repeat its parent's tokens.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_token"]

_prefix = os.urandom(6).hex()
_counter = itertools.count(1)


def _after_fork() -> None:
    global _prefix, _counter
    _prefix = os.urandom(6).hex()
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_after_fork)


def new_token() -> str:
    """A token that no other call, in this or any other process, returns."""
    return f"{_prefix}.{next(_counter):x}"
