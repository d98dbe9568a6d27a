"""A throwaway ``redis-server`` on loopback, for tests, benchmarks and demos."""

from __future__ import annotations

import asyncio
import contextlib
import os
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


def _memory_dir() -> str | None:
    """``/dev/shm`` when it is a writable directory: an AOF there survives the Redis process
    (what the tests kill), and fsync costs nothing on a shared test machine."""
    shm = "/dev/shm"  # noqa: S108 - a private TemporaryDirectory is made inside it
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


@contextlib.asynccontextmanager
async def redis_server(
    host: str = "127.0.0.1",
    *,
    durable: bool = True,
    port: int | None = None,
    workdir: str | None = None,
    executable: str | None = None,
    timeout: float = 10.0,
) -> AsyncIterator[RedisServer]:
    """Start ``redis-server`` on ``host``, stop it on exit.

    Args:
        host: the address to listen on.
        durable: AOF with ``appendfsync always`` (what the ledger needs); else no persistence
            at all (refused by workers and producers unless allowed explicitly).
        port: the port (default: a free one).
        workdir: its directory (the AOF lives there; default: a temporary one, removed, in
            ``/dev/shm`` where it exists: a process crash keeps the AOF, fsync costs nothing;
            give a directory on disk to measure what ``appendfsync always`` costs there).
            Start it again on the same ``port`` and ``workdir`` to restart it with its data.

    Raises:
        FileNotFoundError: no ``redis-server`` on ``PATH`` (``apt-get install redis-server``).
        RuntimeError: it did not start within ``timeout`` seconds.
    """
    path = executable or shutil.which("redis-server")
    if path is None:
        raise FileNotFoundError(
            "redis-server is not on PATH: install it (apt-get install redis-server)"
        )
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else []
    with tempfile.TemporaryDirectory(prefix="hstx-redis-", dir=_memory_dir()) as tmp:
        for _ in range(1 if port else 3):  # a free port may be taken before redis binds it
            listen = port or _free_port(host)
            proc = await asyncio.create_subprocess_exec(
                path,
                "--bind",
                host,
                "--port",
                str(listen),
                "--save",
                "",
                "--appendonly",
                "no",
                *persistence,
                "--dir",
                workdir or tmp,
                "--protected-mode",
                "no",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while proc.returncode is None and loop.time() < deadline:
                    if await _ping(host, listen):
                        break
                    await asyncio.sleep(0.02)
                if proc.returncode is not None:
                    continue  # exited: most likely the port; try another
                if loop.time() >= deadline:
                    raise RuntimeError(f"redis-server did not answer within {timeout} s")
                yield RedisServer(host, listen, proc.pid)
                return
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):  # killed by the caller
                        proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), timeout)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
        raise RuntimeError(f"redis-server did not start on {host} (port {port or 'any'})")
