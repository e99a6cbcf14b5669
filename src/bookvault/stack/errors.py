"""The one exception the stack raises for expected failures.

Its message is a single line that says what went wrong and what to do; the CLI
prints it as is, never with a stack trace.
"""

from __future__ import annotations


class StackError(RuntimeError):
    """Starting, stopping or inspecting the local stack failed in a way a user can fix."""
