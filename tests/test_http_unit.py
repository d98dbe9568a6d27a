"""REST-layer cases the sandbox does not produce, from a scripted server on loopback.

Each test queues the exact replies (or a dropped connection) the server gives, in order.
(aioresponses 0.7.9, the latest, cannot build responses for aiohttp 3.14, and a real socket
exercises more of the client anyway.)
"""

from __future__ import annotations

import json
import socket
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from hubspot_tx import (
    APIConnectionError,
    APIError,
    BadRequestError,
    ConflictError,
    HubSpot,
    PaginationError,
    PermissionDeniedError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
)

DROP = object()  # a queued "reply" that drops the connection instead


class Scripted:
    """A loopback HTTP server answering each request with the next queued reply."""

    def __init__(self) -> None:
        self.replies: deque[Any] = deque()
        self.requests: list[tuple[str, str]] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def reply(self, status: int = 200, payload: Any = None, body: str | None = None) -> None:
        text = body if body is not None else json.dumps(payload)
        self.replies.append(web.Response(status=status, text=text, content_type="application/json"))

    def drop(self) -> None:
        self.replies.append(DROP)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        reply = self.replies.popleft() if self.replies else web.Response(status=599)
        if reply is DROP:
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPInternalServerError  # never reaches the client
        assert isinstance(reply, web.Response)
        return reply

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    srv = Scripted()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def hs(server: Scripted) -> AsyncIterator[HubSpot]:
    policy = RetryPolicy(max_retries=2, initial_backoff=0.001, max_backoff=0.002)
    async with HubSpot("pat-unit", base_url=server.base_url, retry=policy) as client:
        yield client


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (403, PermissionDeniedError),
        (409, ConflictError),
        (418, APIError),
    ],
)
async def test_status_maps_to_typed_error(
    server: Scripted, hs: HubSpot, status: int, cls: type[APIError]
) -> None:
    server.reply(
        status,
        payload={
            "status": "error",
            "message": "nope",
            "correlationId": "c-1",
            "category": "SOME_CATEGORY",
            "subCategory": "sub",
            "errors": [{"message": "bad", "in": "campaignName", "code": "INVALID"}],
            "context": {"campaignName": ["x"]},
        },
    )
    with pytest.raises(cls) as info:
        await hs.smtp_tokens.list()
    err = info.value
    assert type(err) is cls
    assert (err.status, err.message, err.correlation_id) == (status, "nope", "c-1")
    assert (err.category, err.sub_category) == ("SOME_CATEGORY", "sub")
    assert err.errors[0].in_ == "campaignName"
    assert err.context == {"campaignName": ["x"]}
    assert err.path == "/marketing/transactional/2026-03/smtp-tokens"


@pytest.mark.parametrize("status", [301, 302, 304, 307])
async def test_a_redirect_is_an_error_not_a_body(
    server: Scripted, hs: HubSpot, status: int
) -> None:
    server.reply(status, payload={"results": []})
    with pytest.raises(APIError) as info:
        await hs.smtp_tokens.list()
    assert info.value.status == status
    assert len(server.requests) == 1  # not followed, not retried


async def test_non_json_error_body_keeps_the_status(server: Scripted, hs: HubSpot) -> None:
    for _ in range(3):
        server.reply(502, body="<html>Bad gateway</html>")
    with pytest.raises(ServerError) as info:
        await hs.smtp_tokens.list()
    assert info.value.status == 502
    assert "not HubSpot's error JSON" in str(info.value)


async def test_truncated_success_body_is_a_decode_error(server: Scripted, hs: HubSpot) -> None:
    server.reply(200, body='{"results": [{"id": "a", ')
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        await hs.smtp_tokens.list()


async def test_unexpected_shape_is_a_decode_error(server: Scripted, hs: HubSpot) -> None:
    server.reply(200, {"results": "not a list"})
    with pytest.raises(ResponseDecodeError, match=r"\$.results"):
        await hs.smtp_tokens.list()


async def test_connection_reset_of_a_get_is_retried(server: Scripted, hs: HubSpot) -> None:
    server.drop()
    server.reply(200, {"results": []})
    page = await hs.smtp_tokens.list()
    assert page.results == []
    assert len(server.requests) == 2


async def test_connection_reset_of_a_create_is_not_retried(server: Scripted, hs: HubSpot) -> None:
    server.drop()
    server.reply(201, {"id": "x", "password": "p"})
    with pytest.raises(APIConnectionError, match="ServerDisconnectedError"):
        await hs.smtp_tokens.create(campaign_name="c")
    assert server.requests == [("POST", "/marketing/transactional/2026-03/smtp-tokens")]


async def test_a_cursor_that_does_not_advance_stops_iteration(
    server: Scripted, hs: HubSpot
) -> None:
    stuck = {"results": [{"id": "a"}], "paging": {"next": {"after": "same"}}}
    for _ in range(3):
        server.reply(200, stuck)
    seen: list[str] = []

    async def walk() -> None:
        async for token in hs.smtp_tokens.list():
            seen.append(token.id)

    with pytest.raises(PaginationError):
        await walk()
    assert seen == ["a", "a"]  # the first page, then the repeat that gave the loop away


async def test_closed_client_refuses_requests(hs: HubSpot) -> None:
    await hs.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await hs.smtp_tokens.list()


def test_access_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN", raising=False)
    with pytest.raises(ValueError, match="HUBSPOT_ACCESS_TOKEN"):
        HubSpot()
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-env")
    monkeypatch.setenv("HUBSPOT_BASE_URL", "http://127.0.0.1:1/")
    assert HubSpot().base_url == "http://127.0.0.1:1"


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        HubSpot("t", base_url="ftp://example.com")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_an_error_not_a_success(
    server: Scripted, hs: HubSpot, status: int
) -> None:
    """The client does not follow redirects; a 3xx was taken as success: ``publish`` and
    ``smtp_tokens.delete`` returned as if done, a listing failed to decode its body."""
    server.reply(status, body="")
    with pytest.raises(APIError) as info:
        await hs.marketing_emails.publish(123)
    assert info.value.status == status
    assert "redirect" in str(info.value)
    server.reply(status, body="")
    with pytest.raises(APIError):
        await hs.smtp_tokens.delete("tok")
    server.reply(status, body="<html>Moved</html>")
    with pytest.raises(APIError):
        await hs.smtp_tokens.list()
    assert len(server.requests) == 3  # not retried


@pytest.mark.parametrize("body", ['{"access_token": "a"}', "<html>maintenance</html>", ""])
async def test_a_token_answer_that_is_not_tokens_is_a_typed_transient_error(
    server: Scripted, body: str
) -> None:
    """A 200 from the token endpoint whose body is not HubSpot's token JSON (a proxy page,
    a truncated answer) leaked msgspec's exception; it is an OAuthRefreshError, not remembered."""
    from hubspot_tx import OAuth, OAuthRefreshError

    auth = OAuth(client_id="cid", client_secret="secret", refresh_token="rt")
    async with HubSpot(auth, base_url=server.base_url) as hs:
        server.reply(200, body=body)
        with pytest.raises(OAuthRefreshError) as info:
            await hs.smtp_tokens.list()
        assert "secret" not in str(info.value)
        server.reply(200, {"access_token": "at", "expires_in": 1800, "refresh_token": "rt"})
        server.reply(200, {"results": []})
        assert (await hs.smtp_tokens.list()).results == []


@pytest.mark.parametrize("status", [302, 307, 408])
async def test_a_redirect_or_timeout_from_the_token_endpoint_is_not_remembered(
    server: Scripted, status: int
) -> None:
    """Only HubSpot's refusals (4xx) disable the refresh token: a redirect (a proxy, a moved
    endpoint) or a 408 was remembered as a refused refresh token until restart."""
    from hubspot_tx import OAuth, OAuthRefreshError

    auth = OAuth(client_id="cid", client_secret="secret", refresh_token="rt")
    async with HubSpot(auth, base_url=server.base_url) as hs:
        server.reply(status, body="")
        with pytest.raises(OAuthRefreshError) as info:
            await hs.smtp_tokens.list()
        assert info.value.status == status
        assert "refused" not in str(info.value)
        server.reply(200, {"access_token": "at", "expires_in": 1800, "refresh_token": "rt"})
        server.reply(200, {"results": []})
        assert (await hs.smtp_tokens.list()).results == []
