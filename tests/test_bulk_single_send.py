"""Bulk single-send: one outcome per request, paced, sent once per sendId, bounded."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from hubspot_tx import (
    AuthenticationError,
    BulkSendSummary,
    HubSpot,
    RateLimit,
    SendResult,
    SingleSendRequest,
)
from hubspot_tx._paths import API_VERSIONS, DEFAULT_API_VERSION
from hubspot_tx.resources import SingleSend
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY

SEND = API_VERSIONS[DEFAULT_API_VERSION].single_send


@pytest.mark.slow
async def test_1000_requests_under_an_untold_limit_within_1_2x_of_what_it_allows() -> None:
    limit = RateLimit(max_requests=37, interval=2.0)
    total = 1000
    async with Sandbox(rate_limit=limit) as sb, sb.client(retry=FAST_RETRY) as hs:
        requests = (
            hs.single_send.build(email_id=1001, to=f"r{i}@example.org") for i in range(total)
        )
        started = time.monotonic()
        outcomes = [o async for o in hs.single_send.send_many(requests, concurrency=40)]
        elapsed = time.monotonic() - started
    assert len(outcomes) == total
    assert all(o.ok for o in outcomes)
    assert sorted(o.index for o in outcomes) == list(range(total))
    send_ids = Counter(r.request.message.send_id for r in sb.state.sends.values())
    assert len(send_ids) == total
    assert set(send_ids.values()) == {1}
    assert {o.send_id for o in outcomes} == set(send_ids)
    # A token bucket of 37 refilled at 18.5/s lets 1000 requests through in (1000-37)/18.5 s.
    allowed = (total - limit.max_requests) / (limit.max_requests / limit.interval)
    assert sb.limits is not None
    print(
        f"\n1000 single-sends: {elapsed:.1f} s; the limit allows {allowed:.1f} s "
        f"(ratio {elapsed / allowed:.2f}); 429s served: {sb.limits.served_429}"
    )
    assert elapsed <= 1.2 * allowed
    assert sb.limits.served_429 <= 1


async def test_lost_answers_are_retried_without_sending_twice() -> None:
    async with Sandbox(rate_limit=None) as sb, sb.client(retry=FAST_RETRY) as hs:
        fault = sb.faults.rest_commit_then_error(502, method="POST", path=SEND, times=10)
        summaries: list[int] = []
        bulk = hs.single_send.send_many(
            (hs.single_send.build(email_id=1001, to=f"r{i}@example.org") for i in range(50)),
            concurrency=5,
            progress=lambda s: summaries.append(s.done),
        )
        outcomes = [o async for o in bulk]
    assert len(outcomes) == 50
    assert all(o.ok for o in outcomes)
    ignored = [
        o for o in outcomes if o.status and o.status.send_result is SendResult.IDEMPOTENT_IGNORE
    ]
    # Each request whose answer was lost (once or more) ends IDEMPOTENT_IGNORE on its retry:
    # HubSpot kept the first send. None was sent twice.
    assert fault.hits == 10
    assert 1 <= len(ignored) <= 10
    assert len(sb.state.sent_emails) == 50
    assert summaries == list(range(1, 51))
    assert isinstance(bulk.summary, BulkSendSummary)
    assert bulk.summary.accepted == 50
    assert bulk.summary.consumed == 50


async def test_bad_requests_get_their_own_outcome() -> None:
    async with Sandbox(rate_limit=None) as sb, sb.client(retry=FAST_RETRY) as hs:
        good = hs.single_send.build(email_id=1001, to="a@example.org", send_id="keep-me")
        items: list[object] = [good, "not a request", good]
        outcomes = [o async for o in hs.single_send.send_many(items)]  # type: ignore[arg-type]
    by_index = sorted(outcomes, key=lambda o: o.index)
    assert [o.ok for o in by_index] == [True, False, True]
    assert by_index[0].send_id == by_index[2].send_id == "keep-me"
    # The two copies go out concurrently: whichever HubSpot sees second is ignored.
    results = [o.status.send_result for o in (by_index[0], by_index[2]) if o.status is not None]
    assert len(results) == 2
    assert results.count(SendResult.IDEMPOTENT_IGNORE) == 1
    assert "not a SingleSendRequest" in str(by_index[1].error)
    assert len(sb.state.sent_emails) == 1


async def test_a_fatal_error_stops_reading_and_is_raised_once() -> None:
    taken = 0

    def endless() -> Iterator[SingleSendRequest]:
        nonlocal taken
        while True:
            taken += 1
            yield SingleSend.build(email_id=1001, to=f"r{taken}@example.org")

    sb = Sandbox(rate_limit=None)
    async with sb, HubSpot("wrong-token", base_url=sb.base_url, retry=FAST_RETRY) as hs:
        bulk = hs.single_send.send_many(endless(), concurrency=4)
        outcomes = []

        async def drive() -> None:
            async for outcome in bulk:
                outcomes.append(outcome)

        with pytest.raises(AuthenticationError):
            await drive()
    assert bulk.consumed == len(outcomes) <= 3 * 4 + 1
    assert taken <= bulk.consumed + 1
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)
