-- Read models: genre statistics as a materialized view, and the search read model.

-- GET /stats/genres with `materialized_views` on. Refreshed CONCURRENTLY (readers
-- never wait), which needs a unique index covering every row: one row per genre.
CREATE MATERIALIZED VIEW book_statistics AS
    SELECT genre,
           count(*)::bigint AS total_books,
           coalesce(sum(total_copies), 0)::bigint AS total_copies,
           round(avg(rating), 2)::float8 AS avg_rating
      FROM books
     GROUP BY genre;
CREATE UNIQUE INDEX book_statistics_genre_idx ON book_statistics (genre);

-- When each read model was last rebuilt: the `as_of` its readers are shown.
-- Written in the refresh's own transaction, so it never runs ahead of the data.
CREATE TABLE read_model_refreshes (
    name         text PRIMARY KEY,
    refreshed_at timestamptz NOT NULL
);
INSERT INTO read_model_refreshes (name, refreshed_at) VALUES ('book_statistics', now());

-- The search document of a book: title words weigh most, then author, then genre.
-- One definition, used by the projection, the backfill and the seed.
CREATE FUNCTION book_search_document(title text, author text, genre text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN setweight(to_tsvector('english'::regconfig, title), 'A')
        || setweight(to_tsvector('english'::regconfig, author), 'B')
        || setweight(to_tsvector('english'::regconfig, genre), 'C');

-- GET /search with `materialized_views` on: one row per book, written by the same
-- statement that writes the book (see catalog/repo.py), so it is never behind.
-- The book's other columns are joined at read time, so copy counts are always current.
CREATE TABLE book_search (
    book_id      bigint PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
    document     tsvector NOT NULL,
    projected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX book_search_document_idx ON book_search USING gin (document);

INSERT INTO book_search (book_id, document)
    SELECT id, book_search_document(title, author, genre) FROM books;
