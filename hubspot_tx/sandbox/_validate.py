"""Request-body validation as HubSpot's published schemas define it, per API version.

HubSpot answers a body its schema rejects with 400 ``VALIDATION_ERROR`` and one ``errors[]``
entry per problem (``message``, ``in``: the field's JSON path, ``code``). The rules below are
the facts of HubSpot's ``PublicSingleSendRequestEgg`` and ``SmtpApiTokenRequestEgg`` (written
here, not copied): v3 and v4 require ``emailId``, ``message`` and ``message.to``; the dated
versions require ``emailId``, ``message``, ``contactProperties``, ``customProperties`` and
``message.cc/bcc/replyTo`` (not ``message.to``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "DATED_MESSAGE_REQUIRED",
    "DATED_REQUIRED",
    "ErrorItem",
    "single_send_errors",
    "token_create_errors",
]

DATED_REQUIRED = ("emailId", "message", "contactProperties", "customProperties")
DATED_MESSAGE_REQUIRED = ("cc", "bcc", "replyTo")

ErrorItem = dict[str, str]
Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _is_object_map(v: Any) -> bool:
    return isinstance(v, dict)


_MESSAGE: dict[str, tuple[Check, str]] = {
    "to": (_is_str, "a string"),
    "from": (_is_str, "a string"),
    "sendId": (_is_str, "a string"),
    "cc": (_is_str_list, "an array of strings"),
    "bcc": (_is_str_list, "an array of strings"),
    "replyTo": (_is_str_list, "an array of strings"),
}
_REQUEST: dict[str, tuple[Check, str]] = {
    "emailId": (_is_int, "an integer"),
    "message": (lambda v: isinstance(v, dict), "an object"),
    "contactProperties": (_is_str_map, "an object of strings"),
    "customProperties": (_is_object_map, "an object"),
}
_TOKEN: dict[str, tuple[Check, str]] = {
    "campaignName": (_is_str, "a string"),
    "createContact": (_is_bool, "a boolean"),
}


def _check(
    obj: Any, fields: dict[str, tuple[Check, str]], required: tuple[str, ...], at: str
) -> list[ErrorItem]:
    if not isinstance(obj, dict):
        return [{"message": f"{at or 'body'} must be an object", "in": at or "body",
                 "code": "INVALID_TYPE"}]  # fmt: skip
    errors: list[ErrorItem] = []
    for name in required:
        if name not in obj or obj[name] is None:
            path = f"{at}.{name}" if at else name
            errors.append({"message": f"{path} is required", "in": path, "code": "REQUIRED"})
    for name, (check, kind) in fields.items():
        value = obj.get(name)
        if value is not None and not check(value):
            path = f"{at}.{name}" if at else name
            errors.append({"message": f"{path} must be {kind}", "in": path, "code": "INVALID_TYPE"})
    return errors


def single_send_errors(body: Any, *, dated: bool) -> list[ErrorItem]:
    """What HubSpot's schema of that version says is wrong with a single-send body."""
    required: tuple[str, ...]
    message_required: tuple[str, ...]
    if dated:
        required, message_required = DATED_REQUIRED, DATED_MESSAGE_REQUIRED
    else:
        required, message_required = ("emailId", "message"), ("to",)
    errors = _check(body, _REQUEST, required, "")
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, dict):
        errors += _check(message, _MESSAGE, message_required, "message")
    return errors


def token_create_errors(body: Any) -> list[ErrorItem]:
    """What HubSpot's schema says is wrong with an SMTP token creation body."""
    return _check(body, _TOKEN, ("campaignName", "createContact"), "")
