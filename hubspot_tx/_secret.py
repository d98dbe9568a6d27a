"""A string that never shows itself: access tokens and SMTP passwords."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

_MASK = "**********"


class Secret:
    """A secret string, masked in ``repr``, ``str``, f-strings, logs and tracebacks.

    The value is only revealed by an explicit :meth:`get_secret_value` call. Secrets compare in
    constant time and refuse to be pickled, so they cannot leak into a cache or a task queue by
    accident.

    Example:
        >>> s = Secret("hunter2")
        >>> s
        Secret('**********')
        >>> s.get_secret_value()
        'hunter2'
    """

    __slots__ = ("__value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.get_secret_value()
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be str, not {type(value).__name__}")
        self.__value = value

    def get_secret_value(self) -> str:
        """Return the secret in clear. Call it only where the value is sent."""
        return self.__value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return format(_MASK, format_spec)

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __len__(self) -> int:
        return len(self.__value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.__value.encode(), other.__value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self.__value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def reveal(value: str | Secret) -> str:
    """The clear text of a ``str`` or :class:`Secret` (internal helper for the wire)."""
    return value.get_secret_value() if isinstance(value, Secret) else value
