"""The catalog service: books, copy reservations for borrowing, search and statistics."""
