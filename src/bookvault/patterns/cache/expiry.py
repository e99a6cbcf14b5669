"""When entries expire: TTL jitter and XFetch probabilistic early recompute.

Jitter spreads the expiries of entries filled together (after a deploy, a flush, a
bulk import) so they do not all miss in the same second.

XFetch (Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede
Prevention", VLDB 2015) recomputes a value *before* it expires, with a probability
that rises as expiry nears and with how long the last recompute took (`delta`):

    recompute early  when  now - delta * beta * ln(rand()) >= expiry,  rand() in (0, 1]

`-ln(rand())` is exponentially distributed with mean 1, so one reader is expected to
refresh about `delta * beta` seconds before expiry, and the chance that many readers
do at once is small. `beta > 1` favours earlier refreshes; `beta = 0` disables them.
"""

from __future__ import annotations

import math
import random

__all__ = ["jittered_ttl", "xfetch_due"]


def jittered_ttl(ttl: float, jitter: float, rng: random.Random) -> float:
    """`ttl` scaled by a uniform factor in [1 - jitter, 1 + jitter]."""
    if jitter == 0.0:
        return ttl
    return ttl * (1.0 + rng.uniform(-jitter, jitter))


def xfetch_due(now: float, expires_at: float, delta: float, beta: float, rng: random.Random) -> bool:
    """Whether a reader at `now` should recompute an entry expiring at `expires_at`."""
    if delta <= 0.0 or beta <= 0.0:
        return now >= expires_at
    # 1 - random() is in (0, 1], so the logarithm is defined.
    return now - delta * beta * math.log(1.0 - rng.random()) >= expires_at
