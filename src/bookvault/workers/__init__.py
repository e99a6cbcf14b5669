"""Background workers fed by the transactional outboxes (bookvault.patterns.outbox).

* late fees: `loan.returned` events from borrowing → the fee charged to the
  member's account through the accounts API, with the event id as the
  Idempotency-Key, so a redelivered event never charges twice.
* summaries: `payment.recorded` / `charge.recorded` events from accounts → the
  `member_summaries` read model, each event applied once (inbox).

`python -m bookvault.workers` runs one worker process: the borrowing outbox
relay and a consumer of each group. `bookvault up` starts and supervises between
`workers_min` and `workers_max` of them, scaled on the consumer group's lag
(bookvault.stack.workers); `bookvault status` shows outbox backlogs and lag.
"""

from __future__ import annotations

from bookvault.workers.late_fees import LateFeeCharger, RetryLater, charge_key
from bookvault.workers.scaling import Autoscaler, wanted_workers
from bookvault.workers.streams import GROUPS, LATE_FEES, SUMMARIES, StreamGroup, group_lag
from bookvault.workers.summaries import SummaryProjector

__all__ = [
    "GROUPS",
    "LATE_FEES",
    "SUMMARIES",
    "Autoscaler",
    "LateFeeCharger",
    "RetryLater",
    "StreamGroup",
    "SummaryProjector",
    "charge_key",
    "group_lag",
    "wanted_workers",
]
