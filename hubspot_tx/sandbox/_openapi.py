"""The OpenAPI document the sandbox serves at ``/_sandbox/openapi.json``: what this sandbox
serves, generated from hubspot-tx's own structs (``msgspec.json.schema_components``): the HubSpot
paths it emulates for every API version the client knows, and its inspection API.

It is not HubSpot's specification: HubSpot publishes its own (HubSpot-public-api-spec-collection);
the README's "Fidelity to HubSpot's published API" says where the sandbox differs from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import msgspec

from .. import __version__
from .._auth import OAuthTokens
from .._paths import API_VERSIONS, OAUTH_VERSIONS
from .._secret import Secret
from ..models.errors import ErrorBody
from ..models.marketing_emails import (
    EmailCreateRequest,
    EmailType,
    LegacyCampaignPage,
    MarketingEmail,
    MarketingEmailPage,
)
from ..models.single_send import SendStatus, SingleSendRequest
from ..models.smtp_tokens import (
    SmtpToken,
    SmtpTokenCreateRequest,
    SmtpTokenPage,
    SmtpTokenWithPassword,
)
from ..models.tracking import (
    CampaignData,
    EmailEvent,
    EmailEventPage,
    EmailStatistics,
    StatisticsHistogram,
)
from ._inspect import PREFIX
from ._validate import DATED_MESSAGE_REQUIRED, DATED_REQUIRED
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


_API_TAG = "Emulated HubSpot API"
_ERROR = {
    "default": {
        "description": "HubSpot's error body",
        "content": {"application/json": {"schema": _schema("ErrorBody")}},
    }
}


def _schema_hook(type_: type) -> dict[str, Any]:
    if type_ is Secret:
        return {"type": "string", "format": "password"}
    raise NotImplementedError


def _emulated() -> dict[str, dict[str, Any]]:
    """The HubSpot paths the sandbox serves, per API version, with our structs' schemas."""

    def op(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"tags": [_API_TAG], "summary": summary, "responses": {**ok, **_ERROR}, **extra}

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _schema(name)}}}

    token_id = [{"name": "tokenId", "in": "path", "required": True,
                 "schema": {"type": "string"}}]  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for v in API_VERSIONS.values():
        request = "DatedSingleSendRequest" if v.dated else "SingleSendRequest"
        for send in (v.single_send, v.marketing_single_send):
            paths[send] = {"post": op(f"Single-send ({v.version})", _ok("SendStatus", "Status"),
                                      requestBody=body(request))}  # fmt: skip
        paths[v.smtp_tokens] = {
            "get": op("List SMTP tokens", _ok("SmtpTokenPage", "A page"), parameters=[
                _query("campaignName", "the campaign name"),
                _query("emailCampaignId", "the campaign id"),
                _query("after", "the cursor of paging.next.after"),
                _query("limit", "page size (default 10)", "integer")]),
            "post": op("Create an SMTP token", {"201": {"description": "Created", "content": {
                "application/json": {"schema": _schema("SmtpTokenWithPassword")}}}},
                requestBody=body("SmtpTokenCreateRequest")),
        }  # fmt: skip
        paths[v.smtp_tokens + "/{tokenId}"] = {
            "parameters": token_id,
            "get": op("One SMTP token", _ok("SmtpToken", "The token")),
            "delete": op("Delete an SMTP token", _ok(None, "Deleted")),
        }
        paths[v.smtp_tokens + "/{tokenId}/password-reset"] = {
            "parameters": token_id,
            "post": op("Reset a token's password", _ok("SmtpTokenWithPassword", "New password")),
        }
        paths[v.email_statistics + "/list"] = {
            "get": op("Email statistics", _ok("EmailStatistics", "Aggregates"))
        }
        paths[v.email_statistics + "/histogram"] = {
            "get": op("Email statistics per interval", _ok("StatisticsHistogram", "Buckets"))
        }
        paths[v.send_statuses + "/{statusId}"] = {
            "get": op("A send's status", _ok("SendStatus", "Status"), parameters=[
                {"name": "statusId", "in": "path", "required": True,
                 "schema": {"type": "string"}}]),
        }  # fmt: skip
        paths[v.email_events] = {"get": op("Email events (newest first)",
                                           _ok("EmailEventPage", "A page"))}  # fmt: skip
        paths[v.email_events + "/{created}/{eventId}"] = {
            "get": op("One email event", _ok("EmailEvent", "The event"))
        }
        paths[v.email_campaigns + "/{campaignId}"] = {
            "get": op("Campaign data", _ok("CampaignData", "Counters"))
        }
        paths[v.email_campaigns] = {"get": op("Email campaigns, most recently active first",
                                              _ok("LegacyCampaignPage", "A page"))}  # fmt: skip
        paths[v.email_campaigns + "/by-id"] = {
            "get": op("Every email campaign id", _ok("LegacyCampaignPage", "A page"))
        }
        email_id = [{"name": "emailId", "in": "path", "required": True,
                     "schema": {"type": "string"}}]  # fmt: skip
        paths[v.marketing_emails] = {
            "get": op("List marketing emails", _ok("MarketingEmailPage", "A page"), parameters=[
                _query("type", "one email type", enum=[t.value for t in EmailType]),
                *(_query(name, f"the {name} filter", "boolean")
                  for name in ("isPublished", "archived", "includeStats")),
                _query("campaign", "a marketing campaign's GUID"),
                *(_query(name, f"the {name} bound (exclusive)", format="date-time")
                  for name in ("createdAfter", "createdBefore", "updatedAfter",
                               "updatedBefore", "publishedAfter", "publishedBefore")),
                _query("sort", "createdAt, updatedAt, publishedAt or name; -name descending",
                       enum=[f"{d}{n}" for n in _EMAIL_SORTS for d in ("", "-")]),
                _query("after", "the cursor of paging.next.after"),
                _query("limit", "page size (default 10)", "integer", minimum=1)]),
            "post": op("Create a marketing email", {"201": {"description": "Created",
                "content": {"application/json": {"schema": _schema("MarketingEmail")}}}},
                requestBody=body("EmailCreateRequest")),
        }  # fmt: skip
        paths[v.marketing_emails + "/{emailId}"] = {
            "parameters": email_id,
            "get": op("One marketing email", _ok("MarketingEmail", "The email")),
        }
        paths[v.marketing_emails + "/{emailId}/publish"] = {
            "parameters": email_id,
            "post": op("Publish a marketing email", _ok(None, "Published")),
        }
    paths.update(_oauth_operations(op))
    return paths


def _oauth_operations(op: Callable[..., dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def form(fields: list[str], required: list[str], **enums: list[str]) -> dict[str, Any]:
        properties = {name: {"type": "string", **({"enum": enums[name]} if name in enums else {})}
                      for name in fields}  # fmt: skip
        schema = {"type": "object", "required": required, "properties": properties}
        return {"required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": schema}}}  # fmt: skip

    refresh = form(_OAUTH_FORM, _OAUTH_FORM, grant_type=["refresh_token"])
    about = form([*_OAUTH_APP, "token", "token_type_hint"], [*_OAUTH_APP, "token"])
    info = {
        "200": {
            "description": "The token's details, or only active: false",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["active"],
                        "properties": {"active": {"type": "boolean"}},
                    }
                }
            },
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for version in ("v1", *OAUTH_VERSIONS):
        token = f"/oauth/{version}/token"
        paths[token] = {
            "post": {
                **op("Refresh an OAuth access token", _ok("OAuthTokens", "Tokens")),
                "security": [],
                "requestBody": refresh,
            }
        }
        if version == "v1":
            continue
        paths[token + "/introspect"] = {
            "post": {**op("Describe an OAuth token", info), "security": [], "requestBody": about}
        }
        paths[token + "/revoke"] = {
            "post": {
                **op("Revoke an OAuth token", {"200": {"description": "Revoked (no body)"}}),
                "security": [],
                "requestBody": about,
            }
        }
    return paths  # fmt: skip


_EMAIL_SORTS = ("createdAt", "updatedAt", "publishedAt", "name")
_OAUTH_APP = ["client_id", "client_secret"]
_OAUTH_FORM = ["grant_type", *_OAUTH_APP, "refresh_token"]
# Ids the sandbox sends as JSON numbers, as HubSpot's legacy APIs do; the structs read both.
_NUMERIC_IDS = {
    "LegacyCampaign": ("id", "appId"),
    "CampaignData": ("id", "appId"),
    "EmailEvent": ("emailCampaignId", "appId"),
}


def _emulated_components() -> dict[str, Any]:
    types = (
        SingleSendRequest, SendStatus, SmtpToken, SmtpTokenWithPassword, SmtpTokenPage,
        SmtpTokenCreateRequest, EmailEventPage, EmailEvent, CampaignData, EmailStatistics,
        StatisticsHistogram, ErrorBody, MarketingEmail, MarketingEmailPage, EmailCreateRequest,
        LegacyCampaignPage, OAuthTokens,
    )  # fmt: skip
    _, components = msgspec.json.schema_components(
        types, schema_hook=_schema_hook, ref_template=_REF
    )
    for name, fields in _NUMERIC_IDS.items():
        for field in fields:
            components[name]["properties"][field] = {
                "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
            }
    # The dated schemas require more of the same body (see _validate.py).
    dated = json.loads(json.dumps(components["SingleSendRequest"]))
    dated["required"] = sorted(set(dated.get("required", [])) | set(DATED_REQUIRED))
    dated["properties"]["message"] = _schema("DatedSingleSendMessage")
    message = json.loads(json.dumps(components["SingleSendMessage"]))
    message["required"] = sorted(DATED_MESSAGE_REQUIRED)
    for schema in (dated, message):
        for name in schema["required"]:
            prop = schema["properties"][name]
            options = [o for o in prop.get("anyOf", ()) if o != {"type": "null"}]
            if len(options) == 1:  # required: never null (the sandbox takes null as absent)
                schema["properties"][name] = options[0]
    components["DatedSingleSendRequest"] = dated
    components["DatedSingleSendMessage"] = message
    return components


@cache
def _document() -> str:
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "hubspot-tx sandbox",
            "version": __version__,
            "description": (
                "What the hubspot-tx sandbox serves, generated from hubspot-tx's own structs: "
                "the HubSpot transactional-email paths it emulates (every API version the "
                f"client speaks) and its inspection API under `{PREFIX}`. This is not HubSpot's "
                "specification; HubSpot publishes its own (HubSpot-public-api-spec-collection)."
            ),
        },
        "tags": [
            {"name": _API_TAG, "description": "HubSpot's paths, as this sandbox emulates them."},
            {"name": _TAG, "description": "The sandbox's state, for tests (no auth needed)."},
        ],
        "security": [{"bearer": []}],
        "paths": _emulated(),
        "components": {
            "schemas": _emulated_components(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
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
