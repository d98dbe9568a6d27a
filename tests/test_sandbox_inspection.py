"""The inspection API as a test written in another language would use it: the sandbox runs as a
server process (``python -m hubspot_tx.sandbox``), and this file talks to it with plain aiohttp
and the standard library's smtplib only. No project code on the client side."""

from __future__ import annotations

import asyncio
import json
import signal
import smtplib
import ssl
import sys
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest

TOKENS = "/marketing/v3/transactional/smtp-tokens"
SEND = "/marketing/v3/transactional/single-email/send"


class Server:
    def __init__(self, info: dict[str, Any], http: aiohttp.ClientSession) -> None:
        self.info = info
        self.http = http
        self.api = info["inspection_url"]
        self.auth = {"Authorization": f"Bearer {info['access_token']}"}

    async def get(self, path: str, **params: Any) -> Any:
        async with self.http.get(self.api + path, params=params) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def create_token(self, campaign: str) -> dict[str, Any]:
        body = {"campaignName": campaign, "createContact": False}
        url = self.info["base_url"] + TOKENS
        async with self.http.post(url, json=body, headers=self.auth) as r:
            assert r.status == 201
            token: dict[str, Any] = await r.json()
            return token

    def smtp_send(self, token: dict[str, Any], message: EmailMessage) -> None:
        context = ssl.create_default_context(cafile=self.info["ca_file"])
        with smtplib.SMTP(self.info["smtp_host"], self.info["smtp_port"], timeout=10) as smtp:
            smtp.starttls(context=context)
            smtp.login(token["id"], token["password"])
            smtp.send_message(message)

    async def send(self, token: dict[str, Any], message: EmailMessage) -> None:
        await asyncio.to_thread(self.smtp_send, token, message)


def mail(n: int, to: str = "ada@example.org", html: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = to
    message["Subject"] = f"order {n}"
    message["Message-ID"] = f"<order-{n}@shop.example.com>"
    message.set_content(f"Thank you for order {n}.")
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    ports = ["--http-port", "0", "--https-port", "0", "--smtp-port", "0", "--smtps-port", "0"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.sandbox",
        "--json",
        "--no-rate-limit",
        *ports,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        async with aiohttp.ClientSession() as http:
            yield Server(info, http)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_messages_list_open_filter_and_delete(server: Server) -> None:
    token = await server.create_token("orders")
    await server.send(token, mail(1, html="<p>Hi <b>Ada</b></p>"))
    await server.send(token, mail(2, to="grace@example.org"))

    page = await server.get("/messages")
    assert page["total"] == 2
    first, second = page["results"]
    assert first["messageId"] == "<order-1@shop.example.com>"  # Message-ID in the summary
    assert first["subject"] == "order 1"
    assert first["rcptTo"] == ["ada@example.org"]
    assert first["from"] == "Shop <shop@example.com>"
    assert first["tokenId"] == token["id"]
    assert first["campaignId"] == token["emailCampaignId"]
    assert first["arrival"] == 1
    assert second["id"] > first["id"]

    newest_first = await server.get("/messages", order="desc")
    assert [m["id"] for m in newest_first["results"]] == [second["id"], first["id"]]
    only_grace = await server.get("/messages", recipient="GRACE@example.org")
    assert [m["subject"] for m in only_grace["results"]] == ["order 2"]
    by_id = await server.get("/messages", messageId="<order-1@shop.example.com>")
    assert [m["id"] for m in by_id["results"]] == [first["id"]]
    paged = await server.get("/messages", limit=1)
    assert paged["nextAfter"] == first["id"]
    rest = await server.get("/messages", limit=1, after=paged["nextAfter"])
    assert [m["id"] for m in rest["results"]] == [second["id"]]
    assert rest["nextAfter"] is None
    newest = await server.get("/messages", limit=1, order="desc")
    assert [m["id"] for m in newest["results"]] == [second["id"]]
    assert newest["nextAfter"] is None
    older = await server.get("/messages", limit=1, order="desc", before=newest["nextBefore"])
    assert [m["id"] for m in older["results"]] == [first["id"]]
    assert older["nextBefore"] is None

    detail = await server.get(f"/messages/{first['id']}")
    assert detail["text"].strip() == "Thank you for order 1."
    assert "<b>Ada</b>" in detail["html"]
    assert ["Subject", "order 1"] in detail["headers"]

    async with server.http.get(f"{server.api}/messages/{first['id']}/raw") as r:
        assert r.content_type == "message/rfc822"
        raw = await r.read()
    assert b"Message-ID: <order-1@shop.example.com>" in raw
    async with server.http.get(f"{server.api}/messages/{first['id']}/html") as r:
        assert r.content_type == "text/html"
        assert r.headers["Content-Security-Policy"].startswith("sandbox;")
        assert "<b>Ada</b>" in await r.text()
    async with server.http.get(f"{server.api}/messages/{second['id']}/html") as r:
        assert r.status == 404  # a text-only message has no HTML part

    async with server.http.delete(f"{server.api}/messages/{first['id']}") as r:
        assert r.status == 204
    async with server.http.get(f"{server.api}/messages/{first['id']}") as r:
        assert r.status == 404
        assert (await r.json())["category"] == "OBJECT_NOT_FOUND"
    async with server.http.delete(f"{server.api}/messages") as r:
        assert r.status == 204
    assert (await server.get("/messages"))["total"] == 0


async def test_events_campaigns_and_single_sends(server: Server) -> None:
    token = await server.create_token("receipts")
    await server.send(token, mail(3, to="open.reader@example.org"))
    body = {"emailId": 12345678, "message": {"to": "bounced@example.org", "sendId": "s-1"}}
    async with server.http.post(server.info["base_url"] + SEND, json=body, headers=server.auth):
        pass

    deadline = time.monotonic() + 10
    while True:  # events become visible one step apart
        events = await server.get("/events", campaignId=token["emailCampaignId"])
        if [e["type"] for e in events["results"]][-1:] == ["OPEN"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for e in events["results"]] == ["PROCESSED", "SENT", "DELIVERED", "OPEN"]
    assert {e["smtpId"] for e in events["results"]} == {"<order-3@shop.example.com>"}
    (summary,) = (await server.get("/messages"))["results"]
    assert summary["status"] == "OPEN"

    campaigns = {c["campaignId"]: c for c in (await server.get("/campaigns"))["results"]}
    assert campaigns[token["emailCampaignId"]]["name"] == "receipts"
    assert campaigns[token["emailCampaignId"]]["events"]["OPEN"] == 1

    while True:
        (send,) = (await server.get("/single-sends"))["results"]
        if send["status"] == "COMPLETE" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [t["status"] for t in send["timeline"]] == ["PENDING", "PROCESSING", "COMPLETE"]
    assert send["sendResult"] == "PREVIOUSLY_BOUNCED"
    assert send["sendId"] == "s-1"
    while True:
        dropped = await server.get("/events", sendId="s-1")
        if len(dropped["results"]) == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for e in dropped["results"]] == ["PROCESSED", "DROPPED"]
    assert dropped["results"][-1]["dropReason"] == "PREVIOUSLY_BOUNCED"
    # The send names the campaign its events are keyed by: the email's, not its emailId.
    assert send["campaignId"] not in (None, "12345678")
    assert {e["campaignId"] for e in dropped["results"]} == {send["campaignId"]}


async def test_faults_over_http(server: Server) -> None:
    token = await server.create_token("faults")
    fault = {"kind": "smtp", "stage": "rcpt", "code": 550, "recipient": "ada@example.org"}
    async with server.http.post(server.api + "/faults", json=fault) as r:
        assert r.status == 201
        assert (await r.json())["hits"] == 0
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await server.send(token, mail(4))
    assert refused.value.recipients["ada@example.org"][0] == 550
    (armed,) = (await server.get("/faults"))["results"]
    assert armed["hits"] == 1
    assert armed["code"] == 550

    rest = {"kind": "rest", "action": "error", "status": 503, "path": TOKENS}
    async with server.http.post(server.api + "/faults", json=rest) as r:
        assert r.status == 201
    async with server.http.get(server.info["base_url"] + TOKENS, headers=server.auth) as r:
        assert r.status == 503

    async with server.http.post(server.api + "/faults", json={"kind": "smtp"}) as r:
        assert r.status == 400  # no stage: a typed error, nothing armed
    async with server.http.put(
        server.api + "/faults/chaos", json={"seed": 7, "smtpRate": 0.5}
    ) as r:
        assert (await r.json())["seed"] == 7
    assert (await server.get("/faults"))["chaos"]["smtpRate"] == 0.5
    async with server.http.delete(server.api + "/faults") as r:
        assert r.status == 204
    cleared = await server.get("/faults")
    assert cleared == {"results": [], "chaos": None}
    await server.send(token, mail(5))  # nothing armed any more
    assert (await server.get("/messages"))["total"] == 1


async def test_reset_forgets_tokens_and_messages(server: Server) -> None:
    ready = (await server.get("/stats"))["tokens"]  # the token of the printed export line
    token = await server.create_token("reset")
    await server.send(token, mail(6))
    before = await server.get("/stats")
    assert before["messages"] == 1
    assert before["tokens"] == ready + 1

    async with server.http.post(server.api + "/reset") as r:
        assert r.status == 204
    after = await server.get("/stats")
    assert (after["messages"], after["tokens"], after["events"]) == (0, 0, 0)
    assert (await server.get("/tokens"))["total"] == 0
    with pytest.raises(smtplib.SMTPAuthenticationError):  # the token is gone
        await server.send(token, mail(7))
    fresh = await server.create_token("after-reset")
    await server.send(fresh, mail(8))
    (message,) = (await server.get("/messages"))["results"]
    assert message["id"] > 1  # ids are never reused, even after a reset


async def test_long_poll_answers_when_a_message_arrives(server: Server) -> None:
    token = await server.create_token("live")
    page = await server.get("/messages")
    started = time.monotonic()
    poll = asyncio.create_task(server.get("/messages", after=0, wait=10))
    await asyncio.sleep(0.3)
    assert not poll.done()  # nothing yet: it waits
    await server.send(token, mail(9))
    result = await asyncio.wait_for(poll, 10)
    assert [m["subject"] for m in result["results"]] == ["order 9"]
    assert time.monotonic() - started < 5
    assert result["generation"] > page["generation"]


def _schema_keys(spec: dict[str, Any], name: str) -> set[str]:
    return set(spec["components"]["schemas"][name]["properties"])


async def test_served_openapi_documents_the_inspection_api(server: Server) -> None:
    async with server.http.get(server.info["base_url"] + "/_sandbox/openapi.json") as r:
        spec = await r.json()
    paths = spec["paths"]
    assert "/marketing/v3/transactional/smtp-tokens" in paths  # HubSpot's API...
    for path in ("/messages", "/messages/{id}", "/messages/{id}/raw", "/events", "/faults"):
        assert "/_sandbox/v1" + path in paths  # ... and the inspection API
    assert "delete" in paths["/_sandbox/v1/messages"]
    assert "post" in paths["/_sandbox/v1/reset"]

    token = await server.create_token("schema")
    await server.send(token, mail(10, html="<i>x</i>"))
    page = await server.get("/messages")
    assert set(page) == _schema_keys(spec, "MessageList")
    assert set(page["results"][0]) == _schema_keys(spec, "MessageSummary")
    detail = await server.get(f"/messages/{page['results'][0]['id']}")
    assert set(detail) == _schema_keys(spec, "MessageDetail")
    assert set(await server.get("/stats")) == _schema_keys(spec, "Stats")
    assert set((await server.get("/tokens"))["results"][0]) == _schema_keys(spec, "TokenView")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "-5"},
        {"limit": "1001"},
        {"limit": "x"},
        {"order": "sideways"},
        {"wait": "-1"},
        {"wait": "nan"},
        {"wait": "31"},
        {"wait": "soon"},
        {"after": "1.5"},
    ],
)
async def test_bad_message_queries_get_a_400(server: Server, query: dict[str, str]) -> None:
    async with server.http.get(server.api + "/messages", params=query) as r:
        assert r.status == 400, await r.text()
        body = await r.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"]
