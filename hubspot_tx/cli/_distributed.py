"""``hubspot-tx worker`` and ``hubspot-tx relay --distributed``: the relay over Redis.

Only light modules are imported here at module level (``--help`` stays light); asyncio,
logging, taskiq and redis are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .. import _env

if TYPE_CHECKING:
    from ..distributed import DistributedResult

__all__ = ["add_distributed_options", "add_worker_parser", "run_distributed_relay", "run_worker"]

PARENT_VARIABLE = "HUBSPOT_TX_WORKER_PARENT"
REDIS_HELP = "default $HUBSPOT_TX_REDIS_URL or redis://127.0.0.1:6379/0"
PORT_HELP = "SMTP port (default $HUBSPOT_SMTP_PORT, else 587; 465 with --tls implicit)"
TLS_HELP = "STARTTLS (required, never skipped), implicit TLS, or none (plaintext)"
REGION_HELP = (
    "HubSpot's SMTP host: na = smtp.hubapi.com (the default), eu = smtp-eu1.hubapi.com; "
    "beats $HUBSPOT_SMTP_HOST / _PORT"
)
CA_HELP = "trust this CA bundle too (default $HUBSPOT_CA_FILE)"


def _positive(text: str) -> float:
    """An argparse type: a number of seconds greater than 0."""
    value = float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _redis_url(args: argparse.Namespace) -> str:
    return str(args.redis_url or _env.get(_env.REDIS_URL) or "redis://127.0.0.1:6379/0")


def _safe_url(url: str) -> str:
    """The URL without its password (``redis://:secret@host`` shows as ``redis://:***@host``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


async def run_distributed(args: argparse.Namespace) -> int:
    """``worker`` or ``relay --distributed``; Redis that cannot be reached is one line."""
    try:
        import redis.exceptions
    except ImportError:
        raise ImportError(
            f"hubspot-tx {args.command} needs the 'distributed' extra: "
            "pip install 'hubspot-tx[distributed]'"
        ) from None
    try:
        if args.command == "worker":
            return await run_worker(args)
        return await run_distributed_relay(args)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConnectionError(
            f"cannot reach Redis at {_safe_url(_redis_url(args))} ({reason}): start one, or "
            f"point {_env.REDIS_URL} / --redis-url at it"
        ) from None


def add_worker_parser(sub: Any) -> None:
    """Register ``hubspot-tx worker``."""
    worker = sub.add_parser(
        "worker",
        help="run distributed-relay workers (taskiq on Redis) that send what relay "
        "--distributed submits",
        epilog="The SMTP password is read from $HUBSPOT_SMTP_PASSWORD (or --smtp-password) and "
        "handed to the worker processes in their environment: never to Redis, never in a task.",
    )
    worker.add_argument("--redis-url", default=None, help=REDIS_HELP)
    worker.add_argument("--namespace", default="default", help="the relay's namespace")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    worker.add_argument("--connections", type=int, default=10, help="SMTP sessions per process")
    worker.add_argument("--batches", type=int, default=2, help="tasks per process at once")
    worker.add_argument(
        "--rate", type=float, default=None, help="messages/s shared by every worker"
    )
    worker.add_argument("--burst", type=int, default=10, help="burst allowed under --rate")
    worker.add_argument("--lease", type=_positive, default=30.0, help="seconds a claim lasts")
    worker.add_argument(
        "--reconcile-every", type=float, default=10.0, help="seconds between reconcile passes"
    )
    worker.add_argument(
        "--requeue-after",
        type=_positive,
        default=600.0,
        help="seconds after which a queued key gets a new task in any case",
    )
    worker.add_argument("--host", default=None, help="default $HUBSPOT_SMTP_HOST or HubSpot's")
    worker.add_argument("--port", type=int, default=None, help=PORT_HELP)
    worker.add_argument(
        "--tls", choices=["starttls", "implicit", "none"], default="starttls", help=TLS_HELP
    )
    worker.add_argument("--region", choices=["na", "eu"], default=None, help=REGION_HELP)
    worker.add_argument("--smtp-user", default=None, help="default $HUBSPOT_SMTP_USER")
    worker.add_argument(
        "--smtp-password", default=None, help="default $HUBSPOT_SMTP_PASSWORD (prefer the variable)"
    )
    worker.add_argument("--ca-file", default=None, help=CA_HELP)
    worker.add_argument(
        "--allow-plaintext-auth", action="store_true", help="AUTH without TLS (tests only)"
    )
    worker.add_argument("--verbose", "-v", action="store_true", help="log reconcile passes")
    worker.add_argument(
        "--allow-unsafe-redis",
        action="store_true",
        help="run on a Redis that can lose acknowledged writes (not AOF + appendfsync always; "
        "or $HUBSPOT_TX_ALLOW_UNSAFE_REDIS=1): messages may then be sent twice",
    )


def add_distributed_options(relay: argparse.ArgumentParser) -> None:
    """``relay --distributed`` and its options."""
    group = relay.add_argument_group("distributed relay (hubspot-tx worker sends)")
    group.add_argument(
        "--distributed", action="store_true", help="submit to Redis for `hubspot-tx worker`"
    )
    group.add_argument("--redis-url", default=None, help=REDIS_HELP)
    group.add_argument("--namespace", default="default", help="the workers' namespace")
    group.add_argument("--no-wait", action="store_true", help="submit only; do not follow")
    group.add_argument(
        "--timeout",
        type=_positive,
        default=3600.0,
        help="seconds to wait for the results (default 3600)",
    )
    group.add_argument(
        "--allow-unsafe-redis",
        action="store_true",
        help="submit to a Redis that can lose acknowledged writes (not AOF + appendfsync "
        "always; or $HUBSPOT_TX_ALLOW_UNSAFE_REDIS=1): messages may then be sent twice",
    )


# -- worker -------------------------------------------------------------------------------------
_CHILD_OPTIONS = (
    "namespace",
    "connections",
    "batches",
    "rate",
    "burst",
    "lease",
    "reconcile_every",
    "requeue_after",
    "host",
    "port",
    "tls",
    "region",
    "smtp_user",
    "ca_file",
)


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "hubspot_tx.cli", "worker", "--processes", "1"]
    for name in _CHILD_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    if args.allow_plaintext_auth:
        argv.append("--allow-plaintext-auth")
    if args.allow_unsafe_redis:
        argv.append("--allow-unsafe-redis")
    if args.verbose:
        argv.append("--verbose")
    return argv  # never a password: they go in the environment (see _child_env)


def _child_env(args: argparse.Namespace) -> dict[str, str]:
    """The worker processes' environment: the SMTP password and the Redis URL (which may hold
    Redis's password) travel here, never on a command line that ``ps`` shows to every user."""
    env = dict(os.environ)
    if args.smtp_password:
        env["HUBSPOT_SMTP_PASSWORD"] = args.smtp_password
    if args.redis_url:
        env[_env.REDIS_URL] = args.redis_url
    return env


RESTART_BACKOFF = (1.0, 60.0)
"""The first and the longest wait before a dead worker process is started again."""
STOP_GRACE = 120.0
"""Seconds a worker may take to stop after its SIGTERM before it is killed: it drains for at
most ``WorkerSettings.shutdown_timeout`` (30 s), then closes its SMTP pool as long; a hung
one must not keep the supervisor waiting for good."""


async def _supervise(args: argparse.Namespace) -> int:
    """Start ``--processes`` workers; restart one that dies (with backoff); forward SIGTERM /
    SIGINT; wait for all of them.

    A process that exits 0 (stopped), with a usage error or with refused credentials is not
    restarted: it would only fail again.
    """
    import asyncio
    import signal

    from ._main import EXIT_AUTH, EXIT_USAGE

    env = _child_env(args)
    env[PARENT_VARIABLE] = str(os.getpid())  # a worker whose supervisor is gone stops
    argv = _child_argv(args)
    children: list[asyncio.subprocess.Process] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def signal_all(sig: int) -> None:
        for child in children:
            if child.returncode is None:
                child.send_signal(sig)

    def forward() -> None:
        # Asked again (a second Ctrl-C): kill, as when a worker outlives STOP_GRACE.
        signal_all(signal.SIGKILL if stopping.is_set() else signal.SIGTERM)
        stopping.set()

    async def kill_late() -> None:
        await stopping.wait()
        await asyncio.sleep(STOP_GRACE)
        signal_all(signal.SIGKILL)

    async def start() -> asyncio.subprocess.Process:
        child = await asyncio.create_subprocess_exec(*argv, env=env)
        if stopping.is_set():  # asked to stop while it was being started: forward() missed it
            child.send_signal(signal.SIGTERM)
        return child

    async def keep(slot: int) -> int:
        first, longest = RESTART_BACKOFF
        delay = first
        while True:
            child = children[slot]
            started = loop.time()
            code = await child.wait()
            if stopping.is_set() and code == -signal.SIGTERM:
                return 0  # stopped as asked before it could install its handler (just started)
            if stopping.is_set() or code in (0, EXIT_USAGE, EXIT_AUTH):
                return code
            if loop.time() - started > longest:
                delay = first  # it had been running well: not a crash loop
            print(
                f"hubspot-tx worker: process {child.pid} exited {code}; "
                f"restarting it in {delay:g} s",
                file=sys.stderr,
                flush=True,
            )
            try:
                await asyncio.wait_for(stopping.wait(), delay)
                return code
            except TimeoutError:
                pass
            delay = min(longest, delay * 2)
            children[slot] = await start()
            print(
                f"hubspot-tx worker: process {children[slot].pid} started",
                file=sys.stderr,
                flush=True,
            )

    # The handlers come first: a SIGTERM while the workers start must reach those already
    # started, not kill the supervisor and leave them running without it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, forward)
    try:
        while len(children) < args.processes and not stopping.is_set():
            children.append(await start())
        print(
            f"hubspot-tx worker: {len(children)} processes: "
            + " ".join(str(c.pid) for c in children),
            file=sys.stderr,
            flush=True,
        )
        killer = asyncio.create_task(kill_late())
        try:
            codes = await asyncio.gather(*(keep(slot) for slot in range(len(children))))
        finally:
            killer.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        signal_all(signal.SIGTERM)
    for child, code in zip(children, codes, strict=True):
        if code != 0:
            print(f"hubspot-tx worker: process {child.pid} exited {code}", file=sys.stderr)
    bad = [c if c > 0 else 128 - c for c in codes if c != 0]  # killed by N: 128 + N
    return bad[0] if bad else 0


async def _orphaned(parent: int) -> None:
    """Return when the supervisor ``parent`` is gone (this process was re-parented)."""
    import asyncio

    while os.getppid() == parent:  # noqa: ASYNC110 - re-parenting sends no event to wait for
        await asyncio.sleep(1.0)


async def run_worker(args: argparse.Namespace) -> int:
    """``hubspot-tx worker``."""
    import asyncio
    import logging
    import signal

    if args.processes < 1:
        raise ValueError("--processes must be at least 1")
    if args.processes > 1:
        return await _supervise(args)
    from redis.exceptions import RedisError

    from ..distributed import Worker, WorkerSettings
    from ..smtp import SmtpCredentials
    from ._main import EXIT_AUTH, EXIT_UNREACHABLE

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s worker %(process)d %(levelname)s %(message)s",
    )
    user = args.smtp_user or _env.get(_env.SMTP_USER)
    password = args.smtp_password or _env.get(_env.SMTP_PASSWORD)
    if bool(user) != bool(password):
        raise ValueError(f"give both {_env.SMTP_USER} and {_env.SMTP_PASSWORD}, or neither")
    # Host, port and CA left out are read by SmtpPool() from the same variables.
    settings = WorkerSettings(
        redis_url=_redis_url(args),
        namespace=args.namespace,
        host=args.host,
        port=args.port,
        tls=args.tls,
        region=args.region,
        credentials=SmtpCredentials(user, password) if user and password else None,
        ssl_context=None,
        allow_plaintext_auth=args.allow_plaintext_auth,
        connections=args.connections,
        batches=args.batches,
        rate=args.rate,
        burst=args.burst,
        lease=args.lease,
        reconcile_every=args.reconcile_every or None,
        requeue_after=args.requeue_after,
        allow_unsafe_redis=args.allow_unsafe_redis,
    )
    worker = Worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = os.environ.get(PARENT_VARIABLE)
    if not parent:
        from ._output import event_loop_name

        print(
            f"hubspot-tx worker: 1 process: {os.getpid()} ({event_loop_name()})",
            file=sys.stderr,
            flush=True,
        )
    watchdog = None
    if parent and parent.isdigit():
        watchdog = asyncio.create_task(_orphaned(int(parent)))
        watchdog.add_done_callback(lambda _: stop.set())
    try:
        await worker.run(stop)
    except RedisError as exc:
        return _redis_failure(exc)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if worker.unreachable:
        print(
            "hubspot-tx: error: no lease renewed for longer than the lease "
            "(Redis unreachable or refusing writes)",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if worker.fatal is not None:
        print(f"hubspot-tx: error: {worker.fatal}", file=sys.stderr)
        return EXIT_AUTH
    return 0


def _redis_failure(exc: Exception) -> int:
    """One line for a Redis that answered an error (never its URL: it may hold a password).

    A Redis that cannot be reached at all is re-raised: ``run_distributed`` names it, with the
    URL masked, in the same words for ``worker`` and ``relay --distributed``.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from ._main import EXIT_UNREACHABLE

    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        raise exc

    print(
        f"hubspot-tx: error: Redis failed ({type(exc).__name__}: {exc}); check --redis-url / "
        f"${_env.REDIS_URL} and that Redis is running",
        file=sys.stderr,
    )
    return EXIT_UNREACHABLE


# -- relay --distributed ------------------------------------------------------------------------
def _record(result: DistributedResult) -> dict[str, object]:
    from ._output import outcome_record

    return {**outcome_record(result.key, result.outcome), "resultId": result.id}


async def run_distributed_relay(args: argparse.Namespace) -> int:
    """``hubspot-tx relay --distributed``: submit the sources, then follow their results."""
    from redis.exceptions import RedisError

    try:
        return await _relay_distributed(args)
    except RedisError as exc:
        return _redis_failure(exc)
    except TimeoutError as exc:
        print(
            f"hubspot-tx: error: {exc}; the workers may be stopped: rerun with the same "
            "sources (nothing is sent twice) or raise --timeout",
            file=sys.stderr,
        )
        return 1


async def _relay_distributed(args: argparse.Namespace) -> int:
    from ..distributed import DistributedRelay
    from ._output import Progress, table
    from ._sources import describe, read_messages

    for source in args.sources:
        describe(source)  # fail early on a missing source

    def items() -> Any:
        for source in args.sources:
            for source_id, raw in read_messages(source):
                yield raw if _has_message_id(raw) else (source_id, raw)

    started = time.monotonic()
    counts: Counter[str] = Counter()
    async with DistributedRelay(
        _redis_url(args), namespace=args.namespace, allow_unsafe_redis=args.allow_unsafe_redis
    ) as relay:
        submission = await relay.submit(items())
        print(
            f"submitted {len(submission.keys)} message(s): {submission.new} new, "
            f"{len(submission.existing)} already known (not sent again)",
            file=sys.stderr,
        )
        if args.no_wait:
            return 0
        progress = Progress("relay --distributed", enabled=not args.quiet)
        path = Path(args.results)
        try:
            with _append(path) as out:
                async for result in relay.results(keys=submission.keys, timeout=args.timeout):
                    out.write(json.dumps(_record(result)) + "\n")
                    outcome = result.outcome
                    counts[outcome.category.value if outcome.category else "sent"] += 1
                    done = sum(counts.values())
                    progress.update(done, done - counts["sent"])
        finally:
            progress.close()
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    if args.json:
        print(json.dumps({"messages": total, "outcomes": dict(counts), "seconds": elapsed}))
    else:
        rows = [{"outcome": k, "messages": v} for k, v in sorted(counts.items())]
        table(rows or [{"outcome": "(none)", "messages": 0}], ["outcome", "messages"], sys.stdout)
        print(f"{total} result(s) in {elapsed:.2f} s; results in {path}")
    return 0 if counts["sent"] == total else 1


def _append(path: Path) -> TextIO:
    return path.open("a", encoding="utf-8")


def _has_message_id(raw: bytes) -> bool:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(b"message-id:") or b"\nmessage-id:" in head
