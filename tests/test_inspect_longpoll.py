"""The messages long-poll: it answers for a new message, and with ``since`` for any change."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from hubspot_tx.sandbox import Sandbox

from .conftest import make_message


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with session.get(url) as response:
        assert response.status == 200
        body: dict[str, object] = await response.json()
        return body


async def test_wait_answers_for_a_new_message_not_for_other_changes() -> None:
    async with Sandbox(rate_limit=None) as sb, aiohttp.ClientSession() as http:
        url = sb.inspection_url + "/messages?after=0&wait=0.5"
        started = time.monotonic()
        poll = asyncio.ensure_future(_get(http, url))
        await asyncio.sleep(0.1)
        sb.state.delete_messages()  # a change, but no message: the poll keeps waiting
        page = await poll
        assert page["results"] == []
        assert time.monotonic() - started >= 0.45


async def test_since_answers_at_once_for_any_change() -> None:
    async with Sandbox(rate_limit=None) as sb, sb.client() as hs, aiohttp.ClientSession() as http:
        token = await hs.smtp_tokens.create(campaign_name="poll")
        async with sb.smtp_pool(token) as pool:
            await pool.send(make_message(1))
        first = await _get(http, sb.inspection_url + "/messages")
        generation = first["generation"]
        assert isinstance(generation, int)

        # Nothing changed since: it waits (and answers after the wait, empty).
        stale = await _get(
            http, sb.inspection_url + f"/messages?after=1&wait=0.2&since={generation}"
        )
        assert stale["results"] == []

        # A deletion wakes it at once, with the new generation.
        url = sb.inspection_url + f"/messages?after=1&wait=10&since={generation}"
        started = time.monotonic()
        poll = asyncio.ensure_future(_get(http, url))
        await asyncio.sleep(0.1)
        sb.state.delete_messages()
        page = await poll
        assert time.monotonic() - started < 5
        assert page["results"] == []
        assert page["generation"] != generation

        # An old generation answers at once.
        started = time.monotonic()
        await _get(http, sb.inspection_url + f"/messages?after=1&wait=10&since={generation}")
        assert time.monotonic() - started < 5


async def test_stopping_the_sandbox_answers_open_long_polls_at_once() -> None:
    sb = Sandbox(rate_limit=None)
    await sb.start()
    try:
        async with aiohttp.ClientSession() as http:
            poll = asyncio.ensure_future(_get(http, sb.inspection_url + "/messages?wait=30"))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await sb.aclose()
            assert time.monotonic() - started < 5  # not the 30 s of the wait
            page = await poll
            assert page["results"] == []
    finally:
        await sb.aclose()
