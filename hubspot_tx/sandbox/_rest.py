"""The sandbox's REST half: HubSpot's transactional-email endpoints over one shared state."""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections import deque
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from .._paths import API_VERSIONS, OAUTH_VERSIONS
from .._secret import Secret
from ..models.single_send import SingleSendRequest
from ..models.smtp_tokens import (
    NextPage,
    Paging,
    SmtpTokenCreateRequest,
    SmtpTokenPage,
    SmtpTokenWithPassword,
)
from ._email_routes import routes as email_routes
from ._faults import Faults, RestFault
from ._inbox import routes as inbox_routes
from ._inspect import CLOSING_KEY, CONTROL_KEY, Control, end_long_polls
from ._inspect import routes as inspection_routes
from ._limits import RestLimits
from ._state import PORTAL_ID, CursorError, SandboxState, TokenRecord
from ._tracking import routes as tracking_routes
from ._validate import ErrorItem, single_send_errors, token_create_errors
from ._web import (
    FAULTS_KEY,
    LIMITS_KEY,
    LOG_KEY,
    STATE_KEY,
    TOKEN_KEY,
    RequestRecord,
    encoder,
    error_response,
    json_response,
)

__all__ = ["RequestRecord", "build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_ENDPOINT = "/oauth/v1/token"
# HubSpot's OAuth paths: all but v1's answer HubSpot's standard error body. The app
# authenticates in the form, not with a bearer token.
TOKEN_ENDPOINTS = frozenset({TOKEN_ENDPOINT, *(f"/oauth/{v}/token" for v in OAUTH_VERSIONS)})
OAUTH_PATHS = TOKEN_ENDPOINTS | {
    f"/oauth/{v}/token/{op}" for v in OAUTH_VERSIONS for op in ("introspect", "revoke")
}
DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def _validation_error(
    message: str, field: str | None = None, errors: list[ErrorItem] | None = None
) -> web.Response:
    if errors is None:
        errors = [{"message": message, "in": field, "code": "INVALID"}] if field else []
    return error_response(400, "VALIDATION_ERROR", message, errors=errors)


def _invalid_body(errors: list[ErrorItem]) -> web.Response:
    summary = "; ".join(e["message"] for e in errors)
    return _validation_error(f"Invalid input JSON: {summary}", errors=errors)


async def _json_body(request: web.Request) -> object | web.Response:
    try:
        body: object = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as exc:
        return _validation_error(f"Invalid input JSON: {exc}", "body")
    return body


def _not_found(what: str, ident: str) -> web.Response:
    return error_response(404, "OBJECT_NOT_FOUND", f"{what} {ident} does not exist")


def _rate_limited(fault: RestFault) -> web.Response:
    daily = fault.policy_name == "DAILY"
    limit = "daily" if daily else fault.policy_name.lower()
    headers = {
        "X-HubSpot-RateLimit-Daily": "250000",
        "X-HubSpot-RateLimit-Daily-Remaining": "0" if daily else "1000",
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(fault.interval_ms),
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "100" if daily else "0",
    }
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    return error_response(
        429,
        None,  # HubSpot's documented 429 body has errorType, not category
        f"You have reached your {limit} limit.",
        headers=headers,
        errorType="RATE_LIMIT",
        policyName=fault.policy_name,
        requestId=str(uuid.uuid4()),
    )


# -- middlewares (outermost first) ------------------------------------------------------------
def _is_sandbox_own(path: str) -> bool:
    """The inbox and the inspection API: the test's side, not HubSpot's (no auth, no limits,
    no faults, not in the request log)."""
    return path == "/" or path.startswith("/_sandbox/")


@web.middleware
async def _record(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_sandbox_own(request.path):
        return await request.match_info.handler(request)
    response = await handler(request)
    response.headers.setdefault("X-HubSpot-Correlation-Id", str(uuid.uuid4()))
    request.app[LOG_KEY].append(RequestRecord(request.method, request.path, response.status))
    return response


@web.middleware
async def _hubspot_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(404, "OBJECT_NOT_FOUND", f"no route for {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return error_response(
            405,
            "METHOD_NOT_ALLOWED",
            f"{request.method} not allowed here",
            headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
        )


# Scopes HubSpot's spec collection requires of an OAuth token, per path (any one of a set).
_TRANSACTIONAL = frozenset({"transactional-email"})
_SEND = frozenset({"transactional-email", "marketing-email"})
SCOPES: dict[str, frozenset[str]] = {}
for _v in API_VERSIONS.values():
    SCOPES[_v.smtp_tokens] = SCOPES[_v.single_send] = _TRANSACTIONAL
    SCOPES[_v.send_statuses] = _TRANSACTIONAL
    SCOPES[_v.marketing_single_send] = _SEND


def _required_scopes(path: str) -> frozenset[str] | None:
    for prefix, scopes in SCOPES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return scopes
    return None


def _missing_scopes(scopes: frozenset[str]) -> web.Response:
    """HubSpot's 403 for an OAuth token without the scope a path needs."""
    return error_response(
        403,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call.",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": sorted(scopes)},
            }
        ],
        links={"scopes": "https://developers.hubspot.com/scopes"},
    )


def _is_oauth(request: web.Request) -> bool:
    """False when the request carries the sandbox's private-app token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[TOKEN_KEY].get_secret_value()
    return not (
        scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode())
    )


@web.middleware
async def _bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OAUTH_PATHS:
        return await handler(request)  # the client authenticates in the form
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not _is_oauth(request):
        return await handler(request)
    sandbox = request.app[STATE_KEY]
    state = sandbox.access_token_state(token) if scheme.lower() == "bearer" else ""
    if state == "valid":
        needed = _required_scopes(request.path)
        if needed is not None and not needed & sandbox.oauth_scopes.get(token, frozenset()):
            return _missing_scopes(needed)
        return await handler(request)
    if state == "expired":
        return error_response(
            401,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired.",
        )
    return error_response(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication "
        "and private app access tokens.",
    )


@web.middleware
async def _rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    limits = request.app.get(LIMITS_KEY)
    if limits is None or request.path in OAUTH_PATHS:
        return await handler(request)
    oauth = _is_oauth(request)
    broken = limits.take()
    if broken is not None:
        limit = "daily" if broken == "DAILY" else broken.lower()
        return error_response(
            429,
            None,
            f"You have reached your {limit} limit.",
            headers=limits.headers(oauth=oauth),
            errorType="RATE_LIMIT",
            policyName=broken,
            requestId=str(uuid.uuid4()),
        )
    response = await handler(request)
    for name, value in limits.headers(oauth=oauth).items():
        response.headers.setdefault(name, value)  # an injected 429 keeps its own
    return response


@web.middleware
async def _inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    fault = request.app[FAULTS_KEY].take_rest(request.method, request.path)
    if fault is None:
        return await handler(request)
    if fault.action == "delay":
        await asyncio.sleep(fault.seconds)
        return await handler(request)
    if fault.action == "rate_limit":
        return _rate_limited(fault)
    if fault.action == "commit_then_error":
        await handler(request)
    return error_response(fault.status, "INTERNAL_ERROR", "internal error (injected fault)")


# -- handlers ---------------------------------------------------------------------------------
def _state(request: web.Request) -> SandboxState:
    return request.app[STATE_KEY]


def _with_password(record: TokenRecord, password: str) -> SmtpTokenWithPassword:
    view = record.view()
    return SmtpTokenWithPassword(
        **{f: getattr(view, f) for f in view.__struct_fields__}, password=Secret(password)
    )


async def list_tokens(request: web.Request) -> web.Response:
    state = _state(request)
    query = request.query
    campaign_name = query.get("campaignName")
    email_campaign_id = query.get("emailCampaignId")
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return _validation_error("limit must be an integer", "limit")
    if limit > MAX_LIMIT:
        return _validation_error(f"limit must be at most {MAX_LIMIT}", "limit")
    if limit < 1:  # the spec sets no minimum: a non-positive limit means the default
        limit = DEFAULT_LIMIT
    scope = f"{campaign_name!r}|{email_campaign_id!r}"
    after_seq = 0
    if query.get("after"):  # an empty cursor is no cursor
        try:
            after_seq = state.read_cursor(query["after"], scope)
        except CursorError as exc:
            return _validation_error(f"Invalid 'after' cursor: {exc}", "after")
    page: list[TokenRecord] = []
    more = False
    for record in state.list_tokens(
        campaign_name=campaign_name, email_campaign_id=email_campaign_id, after_seq=after_seq
    ):
        if len(page) == limit:
            more = True
            break
        page.append(record)
    paging = None
    if more:
        after = state.make_cursor(page[-1].seq, scope)
        link = str(request.url.with_query({**query, "after": after}))
        paging = Paging(next=NextPage(after=after, link=link))
    return json_response(SmtpTokenPage(results=[r.view() for r in page], paging=paging))


async def create_token(request: web.Request) -> web.Response:
    raw = await _json_body(request)
    if isinstance(raw, web.Response):
        return raw
    errors = token_create_errors(raw)
    if errors:
        return _invalid_body(errors)
    body = msgspec.convert(raw, SmtpTokenCreateRequest)
    record, password = _state(request).create_token(body.campaign_name, body.create_contact)
    return json_response(_with_password(record, password), status=201)


async def get_token(request: web.Request) -> web.Response:
    token_id = request.match_info["tokenId"]
    record = _state(request).tokens.get(token_id)
    if record is None:
        return _not_found("SMTP token", token_id)
    return json_response(record.view())


async def delete_token(request: web.Request) -> web.Response:
    token_id = request.match_info["tokenId"]
    if not _state(request).delete_token(token_id):
        return _not_found("SMTP token", token_id)
    return web.Response(status=204)


async def reset_password(request: web.Request) -> web.Response:
    token_id = request.match_info["tokenId"]
    result = _state(request).reset_password(token_id)
    if result is None:
        return _not_found("SMTP token", token_id)
    return json_response(_with_password(*result))


async def _oauth_form(request: web.Request) -> dict[str, str] | web.Response:
    dated = request.path != TOKEN_ENDPOINT
    try:
        form = await request.post()
    except (ValueError, AssertionError):  # e.g. multipart without a boundary (aiohttp asserts)
        return _oauth_error("BAD_REQUEST", "the body is not a readable form", dated=dated)
    return {k: str(v) for k, v in form.items()}


async def oauth_token(request: web.Request) -> web.Response:
    dated = request.path != TOKEN_ENDPOINT
    fields = await _oauth_form(request)
    if isinstance(fields, web.Response):
        return fields
    if fields.get("grant_type") != "refresh_token":
        return _oauth_error(
            "BAD_GRANT_TYPE", "only grant_type=refresh_token is supported", dated=dated
        )
    granted = _state(request).refresh_oauth(
        fields.get("client_id", ""),
        fields.get("client_secret", ""),
        fields.get("refresh_token", ""),
    )
    if isinstance(granted, str):
        return _oauth_refused(granted, dated=dated)
    token, ttl = granted
    answer: dict[str, object] = {
        "token_type": "bearer",
        "refresh_token": fields["refresh_token"],
        "access_token": token,
        "expires_in": ttl,
    }
    if dated:  # AccessTokenResponse of the dated OAuth API
        answer.update(token_use="access_token", hub_id=PORTAL_ID, scopes=["transactional-email"])
    return json_response(answer)


async def oauth_introspect_or_revoke(request: web.Request) -> web.Response:
    fields = await _oauth_form(request)
    if isinstance(fields, web.Response):
        return fields
    state, token = _state(request), fields.get("token", "")
    app = fields.get("client_id", ""), fields.get("client_secret", "")
    if request.path.endswith("/revoke"):
        refused = state.revoke_oauth(*app, token)
        # HubSpot's spec documents no body for a revoke
        return web.Response(status=200) if refused is None else _oauth_refused(refused, dated=True)
    info = state.introspect_oauth(*app, token)
    return _oauth_refused(info, dated=True) if isinstance(info, str) else json_response(info)


def _oauth_refused(status: str, *, dated: bool) -> web.Response:
    message = "missing or unknown " + status.lower().replace("_", " ")
    return _oauth_error(status, message, dated=dated)


def _oauth_error(status: str, message: str, *, dated: bool) -> web.Response:
    if dated:  # the dated endpoints answer HubSpot's standard error body
        return error_response(400, status, message)
    # /oauth/v1/token's error body differs from the API's: ``status`` names the problem.
    body = {"status": status, "message": message, "correlationId": str(uuid.uuid4())}
    return web.Response(body=encoder.encode(body), status=400, content_type="application/json")


async def _single_send(request: web.Request, *, dated: bool) -> web.Response:
    raw = await _json_body(request)
    if isinstance(raw, web.Response):
        return raw
    errors = single_send_errors(raw, dated=dated)
    if errors:
        return _invalid_body(errors)
    message = raw.get("message") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(message, dict):  # refused above already
        return _validation_error("Invalid input JSON: message must be an object", "message")
    message.setdefault("to", "")  # optional in the dated schemas: INVALID_TO_ADDRESS
    try:
        body = msgspec.convert(raw, SingleSendRequest)
    except msgspec.ValidationError as exc:
        return _validation_error(f"Invalid input JSON: {exc}", "body")
    state = _state(request)
    return json_response(state.send_status(state.single_send(body)))


async def single_send(request: web.Request) -> web.Response:
    return await _single_send(request, dated=False)


async def single_send_dated(request: web.Request) -> web.Response:
    return await _single_send(request, dated=True)


async def send_status(request: web.Request) -> web.Response:
    state = _state(request)
    status_id = request.match_info["statusId"]
    record = state.sends.get(status_id)
    if record is None:
        return _not_found("send status", status_id)
    return json_response(state.send_status(record))


def build_app(
    state: SandboxState,
    faults: Faults,
    access_token: Secret,
    *,
    limits: RestLimits | None = None,
    control: Control | None = None,
    log_size: int = 10_000,
) -> web.Application:
    """The REST application over ``state``, accepting ``Bearer <access_token>``; with
    ``control``, the inspection API too."""
    app = web.Application(
        middlewares=[_record, _hubspot_errors, _bearer_auth, _rate_limit, _inject_faults]
    )
    app[STATE_KEY] = state
    app[FAULTS_KEY] = faults
    app[TOKEN_KEY] = access_token
    app[LOG_KEY] = deque(maxlen=log_size)
    if limits is not None:
        app[LIMITS_KEY] = limits
    router = app.router
    # Every path HubSpot publishes for the versions the client knows (and no other: a path
    # HubSpot does not have is a 404 here too), on the same handlers and state.
    for tokens in sorted({p.smtp_tokens for p in API_VERSIONS.values()}):
        router.add_get(tokens, list_tokens)
        router.add_post(tokens, create_token)
        router.add_get(tokens + "/{tokenId}", get_token)
        router.add_delete(tokens + "/{tokenId}", delete_token)
        router.add_post(tokens + "/{tokenId}/password-reset", reset_password)
    sends = {p.single_send: p.dated for p in API_VERSIONS.values()}
    sends.update({p.marketing_single_send: p.dated for p in API_VERSIONS.values()})
    for path, dated in sorted(sends.items()):
        router.add_post(path, single_send_dated if dated else single_send)
    for path in sorted({p.send_statuses for p in API_VERSIONS.values()}):
        router.add_get(path + "/{statusId}", send_status)
    for path in sorted(TOKEN_ENDPOINTS):
        router.add_post(path, oauth_token)
    for version in OAUTH_VERSIONS:
        for operation in ("introspect", "revoke"):
            router.add_post(f"/oauth/{version}/token/{operation}", oauth_introspect_or_revoke)
    router.add_routes(email_routes(p.marketing_emails for p in API_VERSIONS.values()))
    router.add_routes(tracking_routes(p.email_statistics for p in API_VERSIONS.values()))
    if control is not None:
        app[CONTROL_KEY] = control
        app[CLOSING_KEY] = asyncio.Event()
        app.on_shutdown.append(end_long_polls)
        router.add_routes(inspection_routes())
        router.add_routes(inbox_routes())  # the web inbox, at / and /_sandbox/inbox/
    return app
