"""Review of 8c22fa1 (``Wire`` as an ``asyncio.BufferedProtocol``) and 1cd0821 (one clock read
per read, the watchdog's time kept): reads after ``set_protocol`` on every transport (plain TCP,
STARTTLS, implicit TLS; asyncio and uvloop), replies split across reads and larger than the 64 KiB
read buffer, EOF and resets mid-reply, deadlines asked from a read, idle sessions' clocks.
"""

from __future__ import annotations

import asyncio
import time

from .lane_server import BOUND, PATIENCE, lane_server, mid, msg, pool_for, until


async def test_silent_server_after_a_final_reply_times_out_in_command_timeout() -> None:
    """J2's commands leave with J1's data (one lane); J1's final reply comes after
    command_timeout (the watchdog, firing, moved to final_reply_timeout's deadline); then the
    server goes silent on J2's MAIL: J2's session must fail after command_timeout, not after
    final_reply_timeout (the watchdog must come back to the earlier deadline)."""
    async with lane_server() as server:
        server.plan[(2, "mail")] = "hang"
        server.hold[(1, "data")] = asyncio.Event()
        async with pool_for(
            server, max_connections=1, command_timeout=0.5, final_reply_timeout=8.0
        ) as pool:
            t1 = asyncio.create_task(pool.send(msg(1)))
            await asyncio.wait_for(server.at(1, "data").wait(), PATIENCE)
            t2 = asyncio.create_task(pool.send(msg(2)))
            await until(lambda: bool(pool._lanes) and pool._lanes[0].queued == 1)
            server.hold[(1, "end")] = asyncio.Event()
            server.hold[(1, "data")].set()
            await asyncio.wait_for(server.at(1, "end").wait(), PATIENCE)
            await asyncio.sleep(1.0)  # the watchdog fires while the final reply is owed
            server.hold[(1, "end")].set()
            o1 = await asyncio.wait_for(t1, PATIENCE)
            start = time.monotonic()
            await asyncio.wait_for(server.at(2, "mail").wait(), PATIENCE)
            o2 = await asyncio.wait_for(t2, BOUND)
            took = time.monotonic() - start
        assert o1.ok and o2.ok, (o1, o2)
        assert server.stored[mid(2)] == 1
        assert took < 0.5 + 1.5, took
