"""A throwaway ``redis-server`` on loopback, for tests, benchmarks and demos."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["RedisServer", "redis_server"]


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running throwaway Redis: where it listens, and its process id."""

    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def _ping(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def redis_server(
    host: str = "127.0.0.1", *, executable: str | None = None, timeout: float = 10.0
) -> AsyncIterator[RedisServer]:
    """Start ``redis-server`` on a free port of ``host`` (no persistence), stop it on exit.

    Raises:
        FileNotFoundError: no ``redis-server`` on ``PATH`` (``apt-get install redis-server``).
        RuntimeError: it did not start within ``timeout`` seconds.
    """
    path = executable or shutil.which("redis-server")
    if path is None:
        raise FileNotFoundError(
            "redis-server is not on PATH: install it (apt-get install redis-server)"
        )
    with tempfile.TemporaryDirectory(prefix="hstx-redis-") as workdir:
        for _ in range(3):  # a free port may be taken before redis binds it: try another
            port = _free_port(host)
            proc = await asyncio.create_subprocess_exec(
                path,
                "--bind",
                host,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--protected-mode",
                "no",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while proc.returncode is None and loop.time() < deadline:
                    if await _ping(host, port):
                        break
                    await asyncio.sleep(0.02)
                if proc.returncode is not None:
                    continue  # exited: most likely the port; try another
                if loop.time() >= deadline:
                    raise RuntimeError(f"redis-server did not answer within {timeout} s")
                yield RedisServer(host, port, proc.pid)
                return
            finally:
                if proc.returncode is None:
                    proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), timeout)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
        raise RuntimeError("redis-server did not start (three ports tried)")
