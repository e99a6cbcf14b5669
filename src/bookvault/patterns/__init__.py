"""Reusable performance and resilience patterns.

This package is a library on its own: it imports nothing else from `bookvault`
(an import-linter contract enforces that), so other services can adopt it.
"""
