"""Redis itself killed -9 in the middle of a distributed relay, then restarted from its AOF
(``appendfsync always``): real redis-server processes, the sandbox, ``hubspot-tx worker
--processes 2``.

Every key must end with exactly one result, no Message-ID may reach the server twice, and the
keys that end ``delivery_unknown`` must be among those the ledger had ``sending`` at the kill
(read from a copy of the AOF taken before the restart: exactly what Redis had acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hubspot_tx.distributed import DistributedRelay, KeyState, Ledger, redis_server
from hubspot_tx.distributed._redis_server import _memory_dir
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message
from .distributed_support import require_redis_server
from .test_distributed_kill import workers

MESSAGES = 600
NAMESPACE = "rkill"


async def _sending_in(workdir: str) -> set[str]:
    """The keys ``sending`` in the data of ``workdir``, read by a Redis of its own."""
    async with redis_server(workdir=workdir) as server:
        from redis.asyncio import Redis

        client: Any = Redis.from_url(server.url)
        try:
            ledger = Ledger(client, NAMESPACE)
            held = [k.decode() for k in await client.zrange(ledger.leases_key, 0, -1)]
            states = await ledger.states(held)
        finally:
            await client.aclose()
    return {k for k, s in zip(held, states, strict=True) if s is KeyState.SENDING}


async def test_redis_kill_9_with_aof_always_sends_nothing_twice(tmp_path: Path) -> None:
    require_redis_server()
    log = tmp_path / "workers.log"
    with (
        tempfile.TemporaryDirectory(dir=_memory_dir()) as workdir,
        tempfile.TemporaryDirectory(dir=_memory_dir()) as copy,
    ):
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(redis_server(workdir=workdir))
            url, port = first.url, first.port
            sb = await stack.enter_async_context(Sandbox(rate_limit=None))
            async with sb.client() as hs:
                token = await hs.smtp_tokens.create(campaign_name="redis-kill")
            options = ["--processes", "2", "--connections", "5", "--lease", "10"]
            options += ["--reconcile-every", "2", "--namespace", NAMESPACE]
            await stack.enter_async_context(workers(sb, token, url, log, *options))
            relay = await stack.enter_async_context(DistributedRelay(url, namespace=NAMESPACE))
            submission = await relay.submit(make_message(i) for i in range(MESSAGES))
            assert submission.new == MESSAGES
            async with asyncio.timeout(60):
                while len(sb.outbox()) < MESSAGES // 4:  # noqa: ASYNC110 - the server's store
                    await asyncio.sleep(0.005)

            os.kill(first.pid, signal.SIGKILL)  # mid-run: what it acknowledged is in its AOF
            await asyncio.sleep(0.5)
            shutil.copytree(workdir, copy, dirs_exist_ok=True)
            at_kill = await _sending_in(copy)
            await asyncio.sleep(1.0)  # the outage, as the workers see it
            await stack.enter_async_context(redis_server(port=port, workdir=workdir))

            results = [r async for r in relay.results(keys=submission.keys, timeout=120)]
            states = await relay.ledger.states(submission.keys)
        worker_log = log.read_text()

    outcomes = Counter(r.outcome.category.value if r.outcome.category else "sent" for r in results)
    keys = Counter(r.key for r in results)
    arrivals = Counter(m.message_id for m in sb.outbox())
    unknown = {r.key for r in results if r.outcome.category == "delivery_unknown"}
    print(
        f"\nRedis kill -9: {MESSAGES} messages, {len(at_kill)} sending at the kill; "
        f"outcomes {dict(outcomes)}; {len(arrivals)} distinct Message-IDs received"
    )
    assert len(keys) == MESSAGES
    assert set(keys.values()) == {1}  # exactly one result per key
    assert all(s is not None and s.final for s in states)
    assert set(arrivals.values()) == {1}, arrivals.most_common(3)  # never a Message-ID twice
    assert unknown <= at_kill, (unknown - at_kill, at_kill)
    assert {r.key for r in results if r.outcome.ok} <= set(arrivals)
    assert outcomes["sent"] + len(unknown) == MESSAGES, outcomes
    assert "run id changed" in worker_log, worker_log
