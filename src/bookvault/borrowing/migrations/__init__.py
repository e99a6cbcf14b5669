"""Versioned SQL for the borrowing database (applied by `bookvault.db.migrations`)."""
