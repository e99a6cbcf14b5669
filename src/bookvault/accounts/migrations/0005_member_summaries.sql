-- The transaction summary read model (CQRS): one row per member, fed by the
-- `payment.recorded` / `charge.recorded` events through the outbox, Redis
-- Streams and the workers' `summaries` consumer group (bookvault.workers.summaries).
-- Eventually consistent: `updated_at` says when the last event was applied.
-- Each event is applied once: its id goes to `inbox` in the same transaction.
-- The ledger stays the source of truth; the model can be rebuilt from it.

CREATE TABLE member_summaries (
    member_id bigint PRIMARY KEY,
    total_paid_cents bigint NOT NULL DEFAULT 0,
    total_charged_cents bigint NOT NULL DEFAULT 0,
    transactions_count bigint NOT NULL DEFAULT 0,
    last_transaction_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Handled event ids are forgotten after a week, in bounded batches, oldest first.
CREATE INDEX inbox_handled ON inbox (handled_at);
