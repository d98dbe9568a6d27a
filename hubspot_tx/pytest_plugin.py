"""pytest fixtures for testing code that sends through HubSpot, against the sandbox.

Registered through the ``pytest11`` entry point whenever hubspot-tx is installed; the fixtures
need the ``sandbox`` extra and pytest-asyncio: ``pip install 'hubspot-tx[pytest]'``. They work in
pytest-asyncio's default *strict* mode (mark your async tests ``@pytest.mark.asyncio``) and in
``asyncio_mode = "auto"``. A test that asks for a fixture whose dependency is missing **fails**
with the line that installs it (it is never skipped: a CI run must not go green having tested
nothing).

- ``hubspot_sandbox``: a running `Sandbox` (REST + SMTP on loopback,
  real TLS with its own CA), fresh for each test. ``hubspot_sandbox.outbox(recipient=...)``,
  ``.faults.smtp_drop("stored")``, ``.faults.rest_429(times=2, retry_after=0.1)``, ``.state`` ...
  It runs in the test's own (function-scoped) event loop: a test in a wider loop
  (``loop_scope="session"``) that asks for it fails at setup, naming ``hubspot_shared_sandbox``.
- ``hubspot_client``: a `HubSpot` client of it (verified HTTPS).
- ``hubspot_smtp_token``: an SMTP token created through its REST API.
- ``hubspot_smtp_pool``: an `SmtpPool` logged in with that token (STARTTLS).
- ``hubspot_sandbox_session``: one sandbox for the whole session, in a background thread (any
  test, sync or async, in any event loop, can use it); ``hubspot_shared_sandbox`` is the same
  sandbox, `Sandbox.reset()` before each test that asks for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import HubSpot, SmtpPool, SmtpTokenWithPassword
    from .sandbox import Sandbox

try:
    import pytest_asyncio

    HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_PYTEST_ASYNCIO = False

INSTALL = "pip install 'hubspot-tx[pytest]'"
MISSING_SANDBOX = f"the hubspot-tx pytest fixtures need the sandbox extra: {INSTALL}"
MISSING_ASYNCIO = f"the async hubspot-tx pytest fixtures need pytest-asyncio: {INSTALL}"


def _sandbox_class() -> Any:
    try:
        from .sandbox import Sandbox
    except ImportError as exc:
        missing = f"{MISSING_SANDBOX} ({exc.__cause__ or exc})"
    else:
        return Sandbox
    # Fail, never skip: a skipped fixture would let a CI run go green having run nothing.
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def hubspot_sandbox_session() -> Iterator[Sandbox]:
    """One sandbox for the session, on its own loop in a thread; stopped at the end."""
    _sandbox_class()
    from .sandbox import SandboxThread

    with SandboxThread(rate_limit=None) as sandbox:
        yield sandbox


@pytest.fixture
def hubspot_shared_sandbox(hubspot_sandbox_session: Sandbox) -> Sandbox:
    """The session's sandbox, reset (no tokens, messages, events, faults) for this test."""
    hubspot_sandbox_session.reset()
    return hubspot_sandbox_session


def _test_loop_scope(request: pytest.FixtureRequest) -> str | None:
    """The scope of the loop the requesting test runs in (``None``: not an asyncio test)."""
    marker = request.node.get_closest_marker("asyncio")
    if marker is None:
        return None
    scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    if scope is None:
        try:
            scope = request.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # pytest-asyncio < 0.26: tests always run in the function's loop
            scope = None
    return str(scope or "function")


def _check_loop(request: pytest.FixtureRequest) -> None:
    # The sandbox is served on the function-scoped loop it starts in: a test running in a wider
    # loop would wait on a server that never runs, until its timeout. Say so at once.
    scope = _test_loop_scope(request)
    if scope not in (None, "function"):
        pytest.fail(
            f"hubspot_sandbox runs in each test's own (function-scoped) event loop, and this "
            f"test runs in a {scope}-scoped one: use hubspot_shared_sandbox (its own thread, "
            f"any loop) or run the test with loop_scope='function'",
            pytrace=False,
        )


if HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture(loop_scope="function")
    async def hubspot_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
        """A running sandbox, fresh for each test, stopped after it; in the test's own
        (function-scoped) loop: for a test in a wider loop, use ``hubspot_shared_sandbox``."""
        _check_loop(request)
        async with _sandbox_class()(rate_limit=None) as sandbox:
            yield sandbox

    @pytest_asyncio.fixture(loop_scope="function")
    async def hubspot_client(hubspot_sandbox: Sandbox) -> AsyncIterator[HubSpot]:
        """A HubSpot client of the sandbox, over verified HTTPS."""
        async with hubspot_sandbox.client(https=True) as client:
            yield client

    @pytest_asyncio.fixture(loop_scope="function")
    async def hubspot_smtp_token(hubspot_client: HubSpot) -> SmtpTokenWithPassword:
        """An SMTP token created through the sandbox's REST API."""
        return await hubspot_client.smtp_tokens.create(campaign_name="pytest")

    @pytest_asyncio.fixture(loop_scope="function")
    async def hubspot_smtp_pool(
        hubspot_sandbox: Sandbox, hubspot_smtp_token: SmtpTokenWithPassword
    ) -> AsyncIterator[SmtpPool]:
        """An SMTP pool logged in with ``hubspot_smtp_token`` (STARTTLS, CA trusted)."""
        async with hubspot_sandbox.smtp_pool(hubspot_smtp_token) as pool:
            yield pool

else:  # pragma: no cover - depends on the environment

    @pytest.fixture
    def hubspot_sandbox() -> None:
        """Needs pytest-asyncio."""
        pytest.fail(MISSING_ASYNCIO, pytrace=False)

    @pytest.fixture
    def hubspot_client() -> None:
        """Needs pytest-asyncio."""
        pytest.fail(MISSING_ASYNCIO, pytrace=False)

    @pytest.fixture
    def hubspot_smtp_token() -> None:
        """Needs pytest-asyncio."""
        pytest.fail(MISSING_ASYNCIO, pytrace=False)

    @pytest.fixture
    def hubspot_smtp_pool() -> None:
        """Needs pytest-asyncio."""
        pytest.fail(MISSING_ASYNCIO, pytrace=False)
