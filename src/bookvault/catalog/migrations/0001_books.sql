-- The catalog: books, the copies borrowing has reserved, and title/author search.

CREATE TABLE books (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored as 13 digits with no separators; ISBN-10 input is converted on the way in,
    -- so one book cannot be entered twice under its two spellings.
    isbn             text NOT NULL UNIQUE CHECK (isbn ~ '^97[89][0-9]{10}$'),
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    author           text NOT NULL CHECK (length(author) BETWEEN 1 AND 200),
    genre            text NOT NULL CHECK (length(genre) BETWEEN 1 AND 64),
    published_year   integer NOT NULL CHECK (published_year BETWEEN 1000 AND 9999),
    total_copies     integer NOT NULL CHECK (total_copies >= 0),
    available_copies integer NOT NULL,
    rating           numeric(3, 2) CHECK (rating BETWEEN 0 AND 5),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Title words weigh more than author words when results are ranked.
    search           tsvector GENERATED ALWAYS AS (
                         setweight(to_tsvector('english'::regconfig, title), 'A')
                         || setweight(to_tsvector('english'::regconfig, author), 'B')
                     ) STORED,
    -- The last line of defence for the lending invariant: whatever the application
    -- does, a copy is never lent twice and never invented.
    CONSTRAINT books_available_within_total
        CHECK (available_copies >= 0 AND available_copies <= total_copies)
);

-- Keyset pagination walks ids in order inside one genre or one author.
CREATE INDEX books_genre_id_idx ON books (genre, id);
CREATE INDEX books_author_id_idx ON books (author, id);
CREATE INDEX books_search_idx ON books USING gin (search);

-- One row per copy reservation made by the borrowing service, keyed by the caller's
-- id so a retried reserve or release is recognised. A release that arrives before
-- its reserve leaves a 'released' row with no book (a tombstone) that fences the
-- late reserve off.
CREATE TABLE reservations (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    book_id     bigint REFERENCES books (id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('reserved', 'released')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    CONSTRAINT reservations_released_has_time CHECK ((state = 'released') = (released_at IS NOT NULL)),
    CONSTRAINT reservations_reserved_has_book CHECK (state = 'released' OR book_id IS NOT NULL)
);

-- Serves the cascade when a book is deleted.
CREATE INDEX reservations_book_idx ON reservations (book_id);
