"""A TCP proxy on loopback that delays every chunk by ``--delay`` seconds in each direction.

Run it as its own process (so its CPU is not the client's):

    python benchmarks/delay_proxy.py --listen 127.0.0.1:0 --target 127.0.0.1:2525 --delay 0.010

It prints ``PORT <n>`` once listening and runs until SIGTERM / SIGINT. Each direction is a queue
of (due time, bytes) drained by one writer task, so the delay adds latency without limiting
throughput and keeps the byte order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    task = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, chunk))
        queue.put_nowait((loop.time() + delay, b""))
        await task
    finally:
        task.cancel()


async def serve(listen: str, target: str, delay: float) -> None:
    t_host, t_port = target.rsplit(":", 1)

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(t_host, int(t_port))
        except OSError:
            c_writer.close()
            return
        try:
            await asyncio.gather(pump(c_reader, s_writer, delay), pump(s_reader, c_writer, delay))
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: end the handler quietly (Python 3.11 logs a cancelled one)
        finally:
            for w in (c_writer, s_writer):
                w.close()

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--target", required=True)
    p.add_argument("--delay", type=float, default=0.010, help="seconds added each way")
    a = p.parse_args()
    asyncio.run(serve(a.listen, a.target, a.delay))
