"""Property tests: random streams, faults, concurrency and pool sizes against the tests' own
fault-injecting SMTP server. Outcomes are a bijection with the inputs; nothing is stored twice;
every ``sent`` message is stored. A mutation smoke test shows these checks can fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_tx import FailureCategory, Outcome, SmtpPool, SmtpRetry
from hubspot_tx.smtp import Envelope, _connection

from .fault_server import FAULTS, FaultServer

RETRY = SmtpRetry(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)


def envelopes(count: int, fanout: list[int]) -> Iterator[Envelope]:
    for i in range(count):
        rcpts = tuple(f"r{i}-{j}@example.org" for j in range(fanout[i % len(fanout)]))
        data = (
            f"From: s@example.com\r\nTo: {', '.join(rcpts)}\r\nMessage-ID: <p{i}@prop>\r\n"
            f"Subject: {i}\r\n\r\n" + "body line\r\n" * 8
        ).encode()
        yield Envelope(mail_from="s@example.com", rcpt_to=rcpts, data=data)


async def relay_and_check(
    count: int,
    plan: dict[int, str],
    *,
    concurrency: int,
    connections: int,
    pipelining: bool,
    fanout: list[int],
) -> list[Outcome]:
    server = FaultServer(pipelining=pipelining, plan=plan, slow_seconds=0.3)
    await server.start()
    try:
        async with SmtpPool(
            "127.0.0.1",
            server.port,
            tls="none",
            max_connections=connections,
            retry=RETRY,
            command_timeout=0.15,
            final_reply_timeout=0.15,
            connect_timeout=2,
        ) as pool:
            outcomes = [
                o async for o in pool.send_many(envelopes(count, fanout), concurrency=concurrency)
            ]
    finally:
        await server.stop()
    if "slow_end" in plan.values():
        await asyncio.sleep(0.35)  # a slow reply's message lands in the store meanwhile
    # 1. a bijection between inputs and outcomes
    assert sorted(o.index for o in outcomes if o.index is not None) == list(range(count))
    # 2. nothing stored twice
    stored = server.stored_ids()
    assert all(n == 1 for n in stored.values()), stored.most_common(3)
    # 3. every sent message is stored (for the recipients it says accepted); refusals are not
    delivered: dict[str, set[str]] = {}
    for _, rcpts, data in server.store:
        mid = data.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
        delivered.setdefault(mid, set()).update(rcpts)
    for outcome in outcomes:
        assert outcome.message_id is not None
        if outcome.ok:
            assert set(outcome.accepted) <= delivered.get(outcome.message_id, set())
        elif outcome.category is not FailureCategory.DELIVERY_UNKNOWN:
            assert outcome.message_id not in stored
    return outcomes


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run and in CI
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    count=st.integers(min_value=1, max_value=500),
    faults=st.lists(
        st.tuples(st.integers(min_value=1, max_value=600), st.sampled_from(FAULTS)), max_size=25
    ),
    concurrency=st.integers(min_value=1, max_value=12),
    connections=st.integers(min_value=1, max_value=8),
    pipelining=st.booleans(),
    fanout=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4),
)
def test_relay_guarantees_hold_under_random_faults(
    count: int,
    faults: list[tuple[int, str]],
    concurrency: int,
    connections: int,
    pipelining: bool,
    fanout: list[int],
) -> None:
    asyncio.run(
        relay_and_check(
            count,
            dict(faults),
            concurrency=concurrency,
            connections=connections,
            pipelining=pipelining,
            fanout=fanout,
        )
    )


def test_every_fault_gives_its_exact_outcome() -> None:
    """One message per fault, alone on its connection: the exact outcome each must get."""
    expected = {
        "drop_at_mail": ("sent", 2),
        "drop_at_rcpt": ("sent", 2),
        "drop_at_data": ("sent", 2),
        "drop_in_body": ("delivery_unknown", 1),
        "drop_after_store": ("delivery_unknown", 1),
        "421_at_mail": ("sent", 2),
        "451_at_rcpt": ("sent", 2),
        "550_first_rcpt": ("sent", 1),
        "451_at_end": ("sent", 2),
        "554_at_end": ("rejected", 1),
        "slow_end": ("delivery_unknown", 1),
    }
    assert set(expected) == set(FAULTS)
    for fault, (result, attempts) in expected.items():
        (outcome,) = asyncio.run(
            relay_and_check(
                1, {1: fault}, concurrency=1, connections=1, pipelining=False, fanout=[2]
            )
        )
        got = "sent" if outcome.ok else outcome.category
        assert (got, outcome.attempts) == (result, attempts), fault
        if fault == "550_first_rcpt":
            assert [r.code for r in outcome.refused] == [550]


def test_mutation_smoke_retrying_after_the_final_dot_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relay that 'forgets' the final '.' was written (and so retries) must fail the checks."""
    original = _connection.ConnectionLost.__init__

    def forgetful(self: _connection.ConnectionLost, reason: str, *, after_dot: bool) -> None:
        original(self, reason, after_dot=False)  # the mutation

    monkeypatch.setattr(_connection.ConnectionLost, "__init__", forgetful)
    with pytest.raises(AssertionError):
        asyncio.run(
            relay_and_check(
                1,
                {1: "drop_after_store"},
                concurrency=1,
                connections=1,
                pipelining=False,
                fanout=[1],
            )
        )
