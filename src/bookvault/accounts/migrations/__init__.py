"""Versioned SQL migrations of the accounts database."""
