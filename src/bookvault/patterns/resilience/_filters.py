"""Which exceptions a policy reacts to: one class, a tuple of classes, or a predicate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["ExceptionFilter", "compile_filter", "validate_filter"]

ExceptionFilter: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)


def validate_filter(value: object, *, field: str) -> None:
    """Raise a `TypeError` naming `field` unless `value` is a valid `ExceptionFilter`."""
    if isinstance(value, type):
        if not issubclass(value, BaseException):
            raise TypeError(
                f"{field} must be exception classes or a predicate, got the class {value.__name__}"
            )
        return
    if isinstance(value, tuple):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"{field} must hold exception classes only, got {item!r}")
        return
    if not callable(value):
        raise TypeError(f"{field} must be exception classes or a predicate, got {value!r}")


def compile_filter(value: ExceptionFilter) -> Callable[[BaseException], bool]:
    # A class is itself callable, so it must be recognised before the predicate case:
    # calling `ConnectionError(exc)` would build an exception, which is always truthy.
    if isinstance(value, type | tuple):
        classes = value

        def matches(exc: BaseException) -> bool:
            return isinstance(exc, classes)

        return matches
    return value
