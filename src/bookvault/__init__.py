"""BookVault: a library-lending platform that proves which performance and
resilience patterns pay off, with the patterns as a reusable library
(`bookvault.patterns`)."""

__version__ = "0.1.0"
