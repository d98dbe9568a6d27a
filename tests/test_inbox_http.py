"""The web inbox's files over plain HTTP (no browser): types, caching, and nothing else served."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hubspot_tx.sandbox import Sandbox


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(rate_limit=None) as sandbox:
        yield sandbox


@pytest.mark.parametrize("https", [False, True])
async def test_root_is_the_inbox_page(sb: Sandbox, https: bool) -> None:
    root = sb.https_url if https else sb.base_url
    async with (
        aiohttp.ClientSession() as http,
        http.get(root + "/", ssl=sb.ssl_context() if https else True) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.charset == "utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        page = await response.text()
    assert "<title>hubspot-tx sandbox inbox</title>" in page
    assert "__VERSION__" not in page  # asset URLs carry the real version
    assert re.search(r'src="/_sandbox/inbox/inbox\.js\?v=[0-9a-f]{12}"', page)
    assert re.search(r'href="/_sandbox/inbox/inbox\.css\?v=[0-9a-f]{12}"', page)


async def test_static_files_types_and_caching(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(sb.base_url + "/") as response:
            page = await response.text()
        match = re.search(r"inbox\.js\?v=([0-9a-f]{12})", page)
        assert match is not None
        version = match.group(1)
        for name, content_type in [("inbox.js", "text/javascript"), ("inbox.css", "text/css")]:
            url = f"{sb.base_url}/_sandbox/inbox/{name}"
            async with http.get(url, params={"v": version}) as response:
                assert response.status == 200
                assert response.content_type == content_type
                assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                etag = response.headers["ETag"]
                assert len(await response.read()) > 100
            # Without the page's version (or with an old one) it must be revalidated.
            async with http.get(url, params={"v": "0" * 12}) as response:
                assert response.headers["Cache-Control"] == "no-cache"
            async with http.get(url, headers={"If-None-Match": etag}) as response:
                assert response.status == 304
                assert await response.read() == b""


@pytest.mark.parametrize(
    "path",
    [
        "/_sandbox/inbox/../_server.py",
        "/_sandbox/inbox/..%2f_server.py",
        "/_sandbox/inbox/%2e%2e%2f_inbox.py",
        "/_sandbox/inbox/..%5c_server.py",
        "/_sandbox/inbox/%2e%2e/%2e%2e/__init__.py",
        "/_sandbox/inbox/index.html/../../_server.py",
        "/_sandbox/inbox/",
        "/_sandbox/inbox/nope.js",
    ],
)
async def test_nothing_but_the_inbox_files_is_served(sb: Sandbox, path: str) -> None:
    # A raw request: HTTP clients would normalise the dots away before sending.
    reader, writer = await asyncio.open_connection(sb.host, sb.http_port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 404), answer[:200]
    assert b"import " not in answer
    assert b"Sandbox" not in answer
