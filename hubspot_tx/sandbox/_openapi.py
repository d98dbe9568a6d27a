"""The OpenAPI document the sandbox serves at ``/_sandbox/openapi.json``: HubSpot's spec of the
API it emulates, plus the inspection API, whose schemas come from the structs it returns."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import msgspec

from ._inspect import PREFIX
from ._views import (
    CampaignList,
    ChaosRequest,
    ChaosView,
    EventList,
    FaultList,
    FaultView,
    MessageDetail,
    MessageList,
    RestFaultRequest,
    SendList,
    SendView,
    SmtpFaultRequest,
    Stats,
    TokenList,
)

__all__ = ["openapi_document"]

_TAG = "Sandbox inspection"
_REF = "#/components/schemas/{name}"


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(name=name)}


def _ok(name: str | None, description: str, media: str = "application/json") -> dict[str, Any]:
    if name is None:
        return {"204": {"description": description}}
    return {"200": {"description": description, "content": {media: {"schema": _schema(name)}}}}


def _query(name: str, description: str, kind: str = "string", **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind, **schema}}  # fmt: skip


_BAD = {
    "400": {
        "description": "A malformed parameter or body (HubSpot's error body)",
        "content": {"application/json": {"schema": _schema("Error")}},
    }
}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_MISSING = {"404": {"description": "No such message (never stored, deleted, or reset)"}}


def _operations() -> dict[str, dict[str, Any]]:
    def op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"tags": [_TAG], "summary": summary, "responses": responses, **extra}

    message_filters = [
        _query("recipient", "an envelope recipient (exact, any case)"),
        _query("messageId", "the Message-ID header (exact)"),
        _query("subject", "the Subject (exact)"),
        _query("tokenId", "the SMTP token that sent it"),
        _query("campaignId", "the token's emailCampaignId"),
        _query("q", "a substring of the subject, sender, recipients or Message-ID"),
        _query("after", "only ids above this one (paging: pass nextAfter)", "integer"),
        _query("before", "only ids below this one (order=desc paging: pass nextBefore)", "integer"),
        _query("order", "oldest first (default) or newest first", enum=["asc", "desc"]),
        _query("limit", "at most this many (default 100)", "integer", minimum=1, maximum=1000),
        _query(
            "wait",
            "long-poll: with no result, wait up to this many seconds",
            "number",
            minimum=0,
            maximum=30,
        ),
        _query("since", "long-poll: also answer once the generation is not this", "integer"),
    ]
    html = "text/html"
    return {
        "/messages": {
            "get": op("List messages accepted over SMTP", {**_ok("MessageList", "A page"), **_BAD},
                      parameters=message_filters),
            "delete": op("Delete every message", _ok(None, "Deleted")),
        },
        "/messages/{id}": {
            "parameters": [_ID],
            "get": op("One message: headers, bodies, attachments, events",
                      {**_ok("MessageDetail", "The message"), **_MISSING}),
            "delete": op("Delete one message", {**_ok(None, "Deleted"), **_MISSING}),
        },
        "/messages/{id}/raw": {
            "parameters": [_ID],
            "get": op("The message exactly as received", {
                "200": {"description": "RFC 5322 source",
                        "content": {"message/rfc822": {"schema": {"type": "string"}}}},
                **_MISSING}),
        },
        "/messages/{id}/html": {
            "parameters": [_ID],
            "get": op("The HTML part, served with a CSP sandbox (no script runs)", {
                "200": {"description": "HTML", "content": {html: {"schema": {"type": "string"}}}},
                **_MISSING}),
        },
        "/messages/{id}/attachments/{n}": {
            "parameters": [_ID, {"name": "n", "in": "path", "required": True,
                                 "description": "its place among the attachments, from 0",
                                 "schema": {"type": "integer"}}],
            "get": op("One attachment, as a download (transfer encoding undone)", {
                "200": {"description": "Its bytes, with its declared type",
                        "content": {"application/octet-stream": {"schema": {
                            "type": "string", "format": "binary"}}}},
                "404": {"description": "No such message or attachment"}}),
        },
        "/events": {
            "get": op("Email events whose time has come", {**_ok("EventList", "Events"), **_BAD},
                      parameters=[
                _query("campaignId", "the campaign"), _query("recipient", "the recipient"),
                _query("type", "DELIVERED, BOUNCE, ..."),
                _query("messageId", "events of the SMTP message with this Message-ID"),
                _query("sendId", "events of the single-send with this sendId"),
                _query("limit", "at most this many", "integer", minimum=1, maximum=1000)]),
        },
        "/campaigns": {"get": op("Campaigns and their event counts", _ok("CampaignList", "All"))},
        "/single-sends": {
            "get": op("Single-sends with their status timelines", _ok("SendList", "All"),
                      parameters=[_query("to", "the recipient")]),
        },
        "/single-sends/{statusId}": {
            "parameters": [{"name": "statusId", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "get": op("One single-send", {**_ok("SendView", "The send"),
                                          "404": {"description": "No such single-send"}}),
        },
        "/tokens": {"get": op("SMTP tokens (never their passwords)", _ok("TokenList", "All"))},
        "/faults": {
            "get": op("Armed faults and the chaos setting", _ok("FaultList", "Faults")),
            "post": op("Arm a fault", {"201": {"description": "Armed", "content": {
                "application/json": {"schema": _schema("FaultView")}}}, **_BAD},
                requestBody={"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [_schema("SmtpFaultRequest"), _schema("RestFaultRequest")],
                    "discriminator": {"propertyName": "kind"}}}}}),
            "delete": op("Disarm every fault and stop the chaos", _ok(None, "Cleared")),
        },
        "/faults/chaos": {
            "put": op("Fail a share of commands and calls at random, reproducibly",
                      {**_ok("ChaosView", "Chaos on"), **_BAD},
                      requestBody={"required": True, "content": {
                          "application/json": {"schema": _schema("ChaosRequest")}}}),
            "delete": op("Stop the chaos", _ok(None, "Chaos off")),
        },
        "/reset": {"post": op("Forget everything, disarm faults, refill limits",
                              _ok(None, "Reset"))},
        "/stats": {"get": op("Counters", _ok("Stats", "Counters"))},
    }  # fmt: skip


@cache
def _document() -> str:
    spec: dict[str, Any] = json.loads(
        resources.files(__package__).joinpath("data", "hubspot-openapi.json").read_text()
    )
    spec = copy.deepcopy(spec)
    spec["info"]["description"] = (
        spec["info"].get("description", "")
        + f"\n\nServed by the hubspot-tx sandbox, with its inspection API under `{PREFIX}`."
    )
    spec.setdefault("tags", []).append(
        {"name": _TAG, "description": "The sandbox's state, for tests (no auth needed)."}
    )
    for path, item in _operations().items():
        for key, operation in item.items():
            if key != "parameters":
                operation["security"] = []  # no bearer token for the test's side
        spec["paths"][PREFIX + path] = item
    types = (
        MessageList, MessageDetail, EventList, CampaignList, SendList, SendView, TokenList,
        FaultList, FaultView, SmtpFaultRequest, RestFaultRequest, ChaosRequest, ChaosView, Stats,
    )  # fmt: skip
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    spec["components"]["schemas"].update(components)
    return json.dumps(spec)


def openapi_document() -> str:
    """The document, as JSON text."""
    return _document()
