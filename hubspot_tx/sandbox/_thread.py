"""A sandbox on its own event loop in a background thread: for synchronous code, and for
fixtures that outlive one test's event loop (the pytest plugin's session-scoped sandbox)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from ._server import Sandbox

__all__ = ["SandboxThread"]


class SandboxThread:
    """Run a :class:`Sandbox` in a daemon thread; ``kwargs`` go to :class:`Sandbox`.

    Example:
        >>> with SandboxThread(rate_limit=None) as sb:
        ...     print(sb.base_url)

    Clients in any thread or event loop reach it over loopback; :meth:`Sandbox.reset` and
    reading :meth:`Sandbox.outbox` are safe from the caller's thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("the sandbox thread is not running")
        return self._sandbox

    def start(self, timeout: float = 30.0) -> Sandbox:
        """Start the thread and the sandbox in it; return the running sandbox."""
        if self._thread is not None:
            raise RuntimeError("the sandbox thread is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="hubspot-tx-sandbox", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

        async def start() -> Sandbox:
            sandbox = Sandbox(**self._kwargs)
            await sandbox.start()
            return sandbox

        try:
            self._sandbox = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout)
        except BaseException:
            self.stop()
            raise
        return self._sandbox

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the sandbox, then the loop and the thread. Idempotent."""
        loop, thread, sandbox = self._loop, self._thread, self._sandbox
        self._loop = self._thread = self._sandbox = None
        if loop is None or thread is None:
            return
        try:
            if sandbox is not None:
                asyncio.run_coroutine_threadsafe(sandbox.aclose(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SandboxThread {self._sandbox!r}>"
