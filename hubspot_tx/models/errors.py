"""HubSpot's error body."""

from __future__ import annotations

import msgspec

from ._base import Model, ResponseDecoder

__all__ = ["ErrorBody", "ErrorDetail"]


class ErrorDetail(Model, frozen=True):
    """One entry of ``errors[]``: which field (``in``) failed and why."""

    message: str = ""
    code: str | None = None
    in_: str | None = msgspec.field(default=None, name="in")
    sub_category: str | None = None
    context: dict[str, list[str]] | None = None


class ErrorBody(Model, frozen=True):
    """The JSON body of a HubSpot error response (every field optional, as HubSpot advises)."""

    status: str | None = None
    message: str = ""
    correlation_id: str | None = None
    category: str | None = None
    sub_category: str | None = None
    errors: list[ErrorDetail] = msgspec.field(default_factory=list)
    context: dict[str, list[str]] | None = None
    links: dict[str, str] | None = None
    # 429 bodies: {"errorType": "RATE_LIMIT", "policyName": "DAILY", ...}
    error_type: str | None = None
    policy_name: str | None = None


error_body_decoder = ResponseDecoder(ErrorBody)
