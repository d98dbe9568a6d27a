"""Shared model machinery: the base Struct, tolerant decoding and redacting encoding.

HubSpot says clients should treat every response field as optional, and its older APIs spell the
same values differently (numeric ids, epoch-millisecond times). Decoding therefore has two steps:
a strict, fast msgspec decode for the documented shape, and only if that fails, a normalising pass
over the plain JSON (numbers to strings where a string id is expected, epoch-ms to datetimes)
followed by ``msgspec.convert``. The public types stay plain (``str``, ``datetime``), so models
encode natively.
"""

from __future__ import annotations

import contextlib
import enum
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar

import msgspec

from .._exceptions import ResponseDecodeError
from .._secret import Secret

__all__ = ["Model", "OpenEnum", "ResponseDecoder", "encode"]

T = TypeVar("T")


class Model(msgspec.Struct, rename="camel", kw_only=True, frozen=True, omit_defaults=True):
    """Base of every response model: camelCase on the wire, immutable, unknown fields ignored."""


class OpenEnum(enum.StrEnum):
    """A string enum that keeps values it does not know instead of failing to decode.

    HubSpot adds values to its enums without notice; an unknown value becomes a pseudo-member
    whose ``value`` is the string received. Subclasses may map alternative spellings with
    ``_aliases_``.
    """

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {}

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        alias = cls._aliases().get(value)
        if alias is not None:
            return cls(alias)
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """False for a value this version of hubspot-tx does not know."""
        return self._name_ in type(self).__members__


# Keys whose JSON value is a string id in the documented shape but a number in legacy shapes.
_ID_KEYS = frozenset(
    {
        "id",
        "emailCampaignId",
        "statusId",
        "sendId",
        "campaignId",
        "appId",
        "hmid",
        "smtpId",
        # marketing emails: numbers in some of HubSpot's shapes (EmailCreateRequest types
        # businessUnitId as an integer, PublicEmail as a string)
        "businessUnitId",
        "createdById",
        "updatedById",
        "publishedById",
    }
)
# Keys holding a timestamp: ISO-8601 in v3, epoch milliseconds in legacy APIs.
_TIME_KEYS = frozenset(
    {"createdAt", "requestedAt", "startedAt", "completedAt", "created", "start", "end"}
)
# Legacy token bodies name the SMTP user name ``userName`` instead of ``id``.
_LEGACY_ALIASES = {"userName": "id"}


def _normalise(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_normalise(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _LEGACY_ALIASES and _LEGACY_ALIASES[key] not in obj:
            key = _LEGACY_ALIASES[key]
        if isinstance(value, bool):
            pass
        elif key in _TIME_KEYS and isinstance(value, int | float):
            # Out of range: left as a number, for the shape check to refuse.
            with contextlib.suppress(ValueError, OverflowError, OSError):
                value = datetime.fromtimestamp(value / 1000, UTC)
        elif key in _ID_KEYS and isinstance(value, int):
            value = str(value)
        out[key] = _normalise(value)
    return out


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret and isinstance(obj, str):
        return Secret(obj)
    # TypeError becomes msgspec's ValidationError, with the path (never the value).
    raise TypeError(f"expected {type_.__name__}")


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Secret):
        return str(obj)  # the mask, never the value
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


class ResponseDecoder(Generic[T]):
    """Decode a response body into ``T``: strict fast path, tolerant fallback, typed error."""

    __slots__ = ("_fast", "_type")

    def __init__(self, type_: type[T]) -> None:
        self._type = type_
        self._fast: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_, dec_hook=_dec_hook)

    def decode(self, data: bytes) -> T:
        try:
            return self._fast.decode(data)
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError as exc:
            raise ResponseDecodeError(f"response is not valid JSON: {exc}") from None
        try:
            return msgspec.convert(
                _normalise(msgspec.json.decode(data)), self._type, dec_hook=_dec_hook
            )
        except msgspec.ValidationError as exc:
            # msgspec's message names the path, never the value: safe to surface.
            raise ResponseDecodeError(
                f"unexpected {self._type.__name__} response shape: {exc}"
            ) from None
        except msgspec.DecodeError as exc:  # e.g. a truncated body that failed validation first
            raise ResponseDecodeError(f"response is not valid JSON: {exc}") from None


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode(obj: object) -> bytes:
    """JSON-encode a model; :class:`~hubspot_tx.Secret` fields come out masked."""
    return _encoder.encode(obj)
