"""Pieces shared by the sandbox's web handlers: app keys, JSON and HubSpot error responses."""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any, NamedTuple

import msgspec
from aiohttp import web

from .._secret import Secret
from ._faults import Faults
from ._limits import RestLimits
from ._state import SandboxState

__all__ = [
    "FAULTS_KEY",
    "LIMITS_KEY",
    "LOG_KEY",
    "STATE_KEY",
    "TOKEN_KEY",
    "RequestRecord",
    "encoder",
    "error_response",
    "json_response",
]


class RequestRecord(NamedTuple):
    """One request the sandbox answered (for tests asserting what the client sent)."""

    method: str
    path: str
    status: int


STATE_KEY = web.AppKey("state", SandboxState)
FAULTS_KEY = web.AppKey("faults", Faults)
TOKEN_KEY = web.AppKey("access_token", Secret)
LOG_KEY = web.AppKey("requests", deque[RequestRecord])
LIMITS_KEY = web.AppKey("limits", RestLimits)


def _reveal(obj: Any) -> Any:
    # The sandbox is HubSpot's side: it must put the password on the wire.
    if isinstance(obj, Secret):
        return obj.get_secret_value()
    raise NotImplementedError


encoder = msgspec.json.Encoder(enc_hook=_reveal)


def _wire(obj: Any) -> Any:
    """Models as HubSpot sends them: every field with a value (defaults such as ``false`` or
    ``[]`` included, so that required fields are never missing), absent ones (``None``) left out."""
    if isinstance(obj, msgspec.Struct):
        return {
            f.encode_name: _wire(value)
            for f in msgspec.structs.fields(obj)
            if (value := getattr(obj, f.name)) is not None
        }
    if isinstance(obj, list | tuple):
        return [_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _wire(v) for k, v in obj.items()}
    return obj


def json_response(obj: object, status: int = 200) -> web.Response:
    """``obj`` as a JSON response."""
    return web.Response(
        body=encoder.encode(_wire(obj)), status=status, content_type="application/json"
    )


def error_response(
    status: int,
    category: str | None,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A response carrying HubSpot's error body."""
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4())}
    headers = {**(headers or {}), "X-HubSpot-Correlation-Id": body["correlationId"]}
    if category is not None:
        body["category"] = category
    body.update(extra)
    return web.Response(
        body=encoder.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )
