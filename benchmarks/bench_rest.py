"""D. REST calls against nginx serving fixed JSON (both v3 and 2026-03 path families).

``smtp_tokens.get`` and ``single_send.send`` of the SDK beside hubspot-api-client (sync, natural
usage; a thread pool for concurrency), hubspot-sdk ``AsyncHubSpot`` (httpx, and aiohttp via
``DefaultAioHttpClient``) and a naive aiohttp session decoding with a msgspec Struct;
sequentially and at concurrency 64.

    python benchmarks/bench_rest.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from _common import Json, Meter, Sample, Variant, alternate, cli, free_port, process, sbin, table

from hubspot_tx import HubSpot

TOKEN = "pat-na1-benchmark"
TOKEN_ID = "123456789"
TOKEN_JSON = (
    '{"id":"123456789","campaignName":"benchmark","emailCampaignId":"98765432",'
    '"createContact":false,"createdAt":"2026-01-15T10:00:00.000Z","createdBy":"dev@example.com"}'
)
STATUS_JSON = (
    '{"statusId":"b8c2a6a8-7f1e-4d0e-9a43-1f3f1c7f2a10","status":"PENDING",'
    '"requestedAt":"2026-01-15T10:00:00.000Z",'
    '"eventId":{"id":"e-1","created":"2026-01-15T10:00:00.000Z"}}'
)
PREFIXES = r"/marketing/(v3/transactional|transactional/2026-0[39])"
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;
        location ~ ^{prefixes}/smtp-tokens/[^/]+$ {{ return 200 '{token}'; }}
        location ~ ^{prefixes}/single-email/send$ {{ return 200 '{status}'; }}
        location / {{ return 404 '{{"status":"error","category":"OBJECT_NOT_FOUND"}}'; }}
    }}
}}
"""
HAS_HUBSPOT_SDK = importlib.util.find_spec("hubspot_sdk") is not None
HAS_API_CLIENT = importlib.util.find_spec("hubspot") is not None
Call = Callable[[], Awaitable[Any]]


def write_conf(tmp: str, port: int) -> Path:
    conf = Path(tmp, "nginx.conf")
    text = NGINX_CONF.format(
        tmp=tmp, port=port, prefixes=PREFIXES, token=TOKEN_JSON, status=STATUS_JSON
    )
    conf.write_text(text)
    return conf


@contextlib.asynccontextmanager
async def nginx() -> AsyncIterator[str]:
    """nginx as a plain foreground process with its own config; yields the base URL."""
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        port = free_port()
        conf = write_conf(tmp, port)
        nginx_argv = (sbin("nginx"), "-p", tmp, "-e", f"{tmp}/error.log", "-c", str(conf))
        async with process(*nginx_argv, port=port):
            yield f"http://127.0.0.1:{port}"


# -- the naive baseline ------------------------------------------------------------------------
class TokenView(msgspec.Struct, rename="camel"):
    id: str
    campaign_name: str = ""
    email_campaign_id: str | None = None
    create_contact: bool = False
    created_at: str | None = None
    created_by: str | None = None


class StatusView(msgspec.Struct, rename="camel"):
    status_id: str
    status: str


# -- the rows ----------------------------------------------------------------------------------
async def async_calls(call: Call, total: int, concurrency: int) -> Sample:
    counter = iter(range(total))

    async def work() -> int:
        done = 0
        for _ in counter:
            await call()
            done += 1
        return done

    meter = Meter()
    done = sum(await asyncio.gather(*(work() for _ in range(concurrency))))
    return meter.stop(done)


async def thread_calls(call: Callable[[], Any], total: int, concurrency: int) -> Sample:
    def sequential() -> int:
        for _ in range(total):
            call()
        return total

    def pooled() -> int:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return sum(1 for _ in pool.map(lambda _: call(), range(total)))

    meter = Meter()  # RUSAGE_SELF counts every thread; the event loop only waits meanwhile
    done = await asyncio.to_thread(sequential if concurrency == 1 else pooled)
    return meter.stop(done)


def checked_get(result: Any) -> None:
    if result.id != TOKEN_ID:
        raise RuntimeError(f"unexpected token {result!r}")


def checked_send(result: Any) -> None:
    if result.status_id != "b8c2a6a8-7f1e-4d0e-9a43-1f3f1c7f2a10":
        raise RuntimeError(f"unexpected status {result!r}")


async def run(quick: bool) -> Json:
    seq_total, conc_total = (300, 1_000) if quick else (2_000, 5_000)
    rounds = 2 if quick else 3
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # "connection pool is full" warnings
    notes: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(nginx())
        clients: dict[str, tuple[Call, Call, str, bool]] = {}  # name -> get, send, kind, sdk

        hs = HubSpot(TOKEN, base_url=url, rate_limit=None, retry=None)
        await stack.enter_async_context(hs)

        async def sdk_get() -> None:
            checked_get(await hs.smtp_tokens.get(TOKEN_ID))

        async def sdk_send() -> None:
            checked_send(await hs.single_send.send(email_id=1001, to="ada@example.org"))

        clients["hubspot_tx HubSpot"] = (sdk_get, sdk_send, "async", True)

        session = await stack.enter_async_context(
            aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {TOKEN}"})
        )
        token_dec = msgspec.json.Decoder(TokenView)
        status_dec = msgspec.json.Decoder(StatusView)
        send_body = msgspec.json.encode(
            {"emailId": 1001, "message": {"to": "ada@example.org", "sendId": "x"}}
        )

        async def naive_get() -> None:
            async with session.get(f"/marketing/v3/transactional/smtp-tokens/{TOKEN_ID}") as r:
                r.raise_for_status()
                checked_get(token_dec.decode(await r.read()))

        async def naive_send() -> None:
            async with session.post(
                "/marketing/v3/transactional/single-email/send",
                data=send_body,
                headers={"Content-Type": "application/json"},
            ) as r:
                r.raise_for_status()
                checked_send(status_dec.decode(await r.read()))

        clients["naive aiohttp + msgspec Struct"] = (naive_get, naive_send, "async", False)

        if HAS_HUBSPOT_SDK:
            from hubspot_sdk import AsyncHubSpot, DefaultAioHttpClient

            for label, http_client in (
                ("httpx", None),
                ("aiohttp", DefaultAioHttpClient()),
            ):
                sdk = await stack.enter_async_context(
                    AsyncHubSpot(
                        access_token=TOKEN, base_url=url, max_retries=0, http_client=http_client
                    )
                )
                tx = sdk.marketing.transactional

                async def hs_get(tx: Any = tx) -> None:
                    checked_get(await tx.smtp_tokens.get(TOKEN_ID))

                async def hs_send(tx: Any = tx) -> None:
                    checked_send(
                        await tx.single_email.send(
                            email_id=1001,
                            message={"to": "ada@example.org"},
                            contact_properties={},
                            custom_properties={},
                        )
                    )

                clients[f"hubspot-sdk AsyncHubSpot ({label}), 2026-03 paths"] = (
                    hs_get,
                    hs_send,
                    "async",
                    False,
                )
        else:
            notes.append("hubspot-sdk: unavailable (see install.sh output).")

        if HAS_API_CLIENT:
            import hubspot
            from hubspot.marketing.transactional import (
                PublicSingleSendEmail,
                PublicSingleSendRequestEgg,
            )

            api = hubspot.Client.create(access_token=TOKEN, host=url)
            tokens_api = api.marketing.transactional.public_smtp_tokens_api
            send_api = api.marketing.transactional.single_send_api

            def hac_get() -> None:
                checked_get(tokens_api.get_token_by_id(TOKEN_ID))

            def hac_send() -> None:
                egg = PublicSingleSendRequestEgg(
                    email_id=1001, message=PublicSingleSendEmail(to="ada@example.org")
                )
                checked_send(send_api.send_email(public_single_send_request_egg=egg))

            sync_clients = {"hubspot-api-client (sync, urllib3)": (hac_get, hac_send)}
        else:
            sync_clients = {}
            notes.append("hubspot-api-client: not installed.")

        tables = []
        for op in ("get", "send"):
            for concurrency, total in ((1, seq_total), (64, conc_total)):
                variants = []
                for name, (get, send, _, is_sdk) in clients.items():
                    call = get if op == "get" else send
                    await call()  # warm: connection open, first-call caches

                    def row(call: Call = call, c: int = concurrency, n: int = total) -> Any:
                        return async_calls(call, n, c)

                    variants.append(Variant(name, row, sdk=is_sdk))
                for name, (sget, ssend) in sync_clients.items():
                    scall = sget if op == "get" else ssend
                    await asyncio.to_thread(scall)

                    def srow(
                        call: Callable[[], Any] = scall, c: int = concurrency, n: int = total
                    ) -> Any:
                        return thread_calls(call, n, c)

                    note = f"{concurrency} threads" if concurrency > 1 else ""
                    variants.append(Variant(name, srow, note=note))
                what = "GET smtp-tokens/{id}" if op == "get" else "POST single-email/send"
                how = "sequential" if concurrency == 1 else f"concurrency {concurrency}"
                await alternate(variants, rounds, f"D {op} c{concurrency}")
                tables.append(table(f"{what}, {how}, {total} calls per round", variants, "req/s"))
    return {
        "id": "D",
        "title": "REST calls against nginx returning fixed JSON",
        "notes": [
            f"nginx 1 worker, keep-alive; {rounds} rounds alternating; every response decoded "
            "into the client's model and checked. SDK: rate_limit=None, retry=None.",
            "hubspot-api-client: one Client, api objects taken once, urllib3 pool of its "
            "default size; concurrency via a thread pool.",
            *notes,
        ],
        "tables": tables,
    }


if __name__ == "__main__":
    cli(__doc__, run)
