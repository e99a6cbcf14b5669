"""Borrowing service: loans of catalog copies, reserved over HTTP by a saga."""
