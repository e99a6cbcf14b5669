-- A loan is created 'pending' before the catalog is asked for a copy, so a crash
-- between the two leaves a row the reconciler can find and release.
CREATE TABLE loans (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id      bigint      NOT NULL CHECK (member_id > 0),
    book_id        bigint      NOT NULL CHECK (book_id > 0),
    status         text        NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'active', 'returned', 'cancelled')),
    borrowed_at    timestamptz,
    due_at         timestamptz,
    returned_at    timestamptz,
    fee_cents      integer     NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    -- The key the catalog fences on: released once, never reservable again.
    reservation_id text        NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- A loan the member holds or held always has its dates.
    CONSTRAINT loans_dates_when_lent CHECK (
        status NOT IN ('active', 'returned') OR (borrowed_at IS NOT NULL AND due_at IS NOT NULL)
    ),
    CONSTRAINT loans_returned_at_when_returned CHECK (
        (status = 'returned') = (returned_at IS NOT NULL)
    )
);

-- Listing a member's loans by status, newest first.
CREATE INDEX loans_member_status_idx ON loans (member_id, status, id DESC);

-- The reconciler scans only the few loans stuck in 'pending'.
CREATE INDEX loans_pending_created_idx ON loans (created_at) WHERE status = 'pending';
