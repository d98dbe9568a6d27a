"""The distributed relay end to end, with real processes: a worker SIGKILLed in DATA.

A real redis-server, the sandbox (real STARTTLS + AUTH) in this process, ``hubspot-tx worker
--processes 3`` (three OS processes). One message is held by the server after its final "."
and the worker that sent it is killed -9. Every key must still end with exactly one result,
no Message-ID may reach the server twice, and only messages that were past the server's 354
in the dead worker may end ``delivery_unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hubspot_tx import SmtpTokenWithPassword
from hubspot_tx.distributed import DistributedRelay, KeyState, RedisServer
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message
from .distributed_support import redis_srv

__all__ = ["redis_srv"]

MESSAGES = 2000


async def _stop(proc: asyncio.subprocess.Process, pids: list[int]) -> None:
    """SIGTERM the supervisor (it forwards to its workers); SIGKILL everything if it hangs."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        for pid in [proc.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await proc.wait()


@contextlib.asynccontextmanager
async def workers(
    sb: Sandbox, token: SmtpTokenWithPassword, redis_url: str, log: Path, *options: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[int]]]:
    """``hubspot-tx worker`` with the SMTP password in its environment only."""
    env = {
        **os.environ,
        "HUBSPOT_SMTP_USER": token.id,
        "HUBSPOT_SMTP_PASSWORD": token.password.get_secret_value(),
    }
    argv = ["--redis-url", redis_url, "--host", sb.host, "--port", str(sb.smtp_port)]
    argv += ["--ca-file", sb.ca_file, *options]
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubspot_tx.cli", "worker", *argv, stderr=out, env=env
        )
    pids: list[int] = []
    try:
        for _ in range(200):
            match = re.search(r"process(?:es)?: ([\d ]+)", await asyncio.to_thread(log.read_text))
            if match:
                pids = [int(p) for p in match.group(1).split()]
                break
            await asyncio.sleep(0.05)
        yield proc, pids
    finally:
        await _stop(proc, pids)


async def _sending(relay: DistributedRelay) -> dict[str, str]:
    """Keys now ``sending``, with their owner, in two round trips.

    It used to ask for each leased key in turn (some 600 claimed keys, three commands each):
    on a loaded machine that took longer than the 8 s the server holds the message, which
    then was no longer ``sending`` when looked at again (the test's flake, not the relay's).
    """
    ledger = relay.ledger
    redis: Any = ledger.redis
    keys = [k.decode() for k in await redis.zrange(ledger.leases_key, 0, -1)]
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(ledger.prefix + key, ["s", "o"])
    out = {}
    for key, (state, owner) in zip(keys, await pipe.execute(), strict=True):
        if state == KeyState.SENDING.value.encode() and owner:
            out[key] = owner.decode()
    return out


async def test_kill_9_in_data_leaves_one_result_per_key_and_no_duplicate(
    redis_srv: RedisServer, tmp_path: Path
) -> None:
    async with Sandbox(rate_limit=None) as sb:
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="kill")
        options = ["--processes", "3", "--connections", "5", "--lease", "2"]
        options += ["--reconcile-every", "1"]
        log = tmp_path / "workers.log"
        async with (
            DistributedRelay(redis_srv.url, namespace="kill") as relay,
            workers(sb, token, redis_srv.url, log, *options, "--namespace", "kill") as (
                proc,
                pids,
            ),
        ):
            assert len(pids) == 3, log.read_text()
            submission = await relay.submit(make_message(i) for i in range(MESSAGES))
            assert submission.new == MESSAGES

            # Mid-run, hold one message after its final "." (before the server's reply).
            async with asyncio.timeout(60):
                while len(sb.outbox()) < 300:  # noqa: ASYNC110 - polling the server's store
                    await asyncio.sleep(0.01)
            fault = sb.faults.smtp_slow("end", seconds=8)
            async with asyncio.timeout(30):
                while fault.hits == 0:  # noqa: ASYNC110 - polling the fault's counter
                    await asyncio.sleep(0.005)
            first = await _sending(relay)
            await asyncio.sleep(0.5)
            second = await _sending(relay)
            held = sorted(k for k in first if second.get(k) == first[k])
            assert held, (first, second)
            owner = first[held[0]]
            heartbeat = await relay.ledger.owner_heartbeat(owner)
            assert heartbeat is not None
            victim = int(heartbeat.split("@")[0])
            assert victim in pids

            # Freeze it, count what it has past the server's 354, then kill -9.
            os.kill(victim, signal.SIGSTOP)
            in_data = [k for k, o in (await _sending(relay)).items() if o == owner]
            os.kill(victim, signal.SIGKILL)
            sb.faults.clear()

            results = [r async for r in relay.results(keys=submission.keys, timeout=90)]
            ledger = relay.ledger
            stream_len = await ledger.redis.xlen(ledger.results_key)
            states = await ledger.states(submission.keys)
            bodies = sum(
                [await ledger.redis.hexists(ledger.prefix + k, "b") for k in submission.keys]
            )
        code = proc.returncode
    supervisor_log = log.read_text()

    outcomes = Counter(r.outcome.category.value if r.outcome.category else "sent" for r in results)
    keys = Counter(r.key for r in results)
    arrivals = Counter(m.message_id for m in sb.outbox())
    unknown = outcomes["delivery_unknown"]
    print(
        f"\nkill test: {MESSAGES} messages, 3 workers, killed pid {victim} with "
        f"{len(in_data)} message(s) past 354; outcomes {dict(outcomes)}; "
        f"server received {len(arrivals)} distinct Message-IDs"
    )
    assert len(keys) == MESSAGES
    assert set(keys.values()) == {1}  # exactly one result per key
    assert stream_len == MESSAGES  # and one stream entry per key
    assert all(s is not None and s.final for s in states)
    assert bodies == 0  # every body left Redis
    assert all(m.arrival == 1 for m in sb.outbox())  # never a Message-ID twice
    assert 1 <= unknown <= len(in_data)
    assert outcomes["sent"] + unknown == MESSAGES
    assert {r.key for r in results if r.outcome.ok} <= set(arrivals)  # each "sent" arrived
    # The supervisor reported its killed worker and started another in its place.
    assert f"process {victim} exited -9; restarting it" in supervisor_log, supervisor_log
    assert code == 0, supervisor_log
