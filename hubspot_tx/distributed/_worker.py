"""A worker process: takes batches of keys from the task stream and sends them, exactly once.

For each key of a batch: claim it (compare-and-set), wait for the shared rate limit (before
MAIL, so that no session waits inside DATA), open the SMTP transaction, and after the server's
354, before any byte of the message, mark it ``sending``; then record its one outcome. One
:class:`SmtpPool` per process serves every task. The SMTP password comes from the process's
own configuration, never from Redis or a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AsyncBroker
from taskiq.receiver import Receiver

from .._exceptions import SmtpAuthError, SmtpError, SmtpTLSError
from ..smtp import (
    FailureCategory,
    Outcome,
    OutcomeStatus,
    SmtpCredentials,
    SmtpPool,
    SmtpRetry,
    TlsMode,
)
from ._broker import Tasks, make_broker
from ._client import (
    DEFAULT_REDIS_TIMEOUT,
    UnsafeRedisError,
    check_durability,
    connect,
    durability,
    timeout_options,
    unsafe_allowed,
    unsafe_error,
)
from ._ledger import DEFAULT_MAX_CLAIMS, DEFAULT_RETENTION, Claim, Ledger
from ._limiter import RateLimiter
from ._reconcile import WORKER_PREFIX, ReconcileReport, reconcile

__all__ = ["Worker", "WorkerSettings"]

logger = logging.getLogger("hubspot_tx.distributed")


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How a worker process connects and paces itself.

    Attributes:
        redis_url: the Redis holding the ledger and the task stream.
        namespace: the relay's namespace (the producer's).
        host, port, tls, region, ssl_context, allow_plaintext_auth: the SMTP server, as for
            :class:`~hubspot_tx.SmtpPool`.
        credentials: the SMTP login (masked in every ``repr``).
        connections: SMTP sessions of this process (and messages in flight).
        batches: tasks this process runs at once.
        rate: messages per second shared by every worker of the namespace (``None``: none).
        burst: messages that may go at once under ``rate``.
        lease: seconds a claim lasts without renewal (renewed every ``lease / 3``).
        reconcile_every: seconds between this process's reconcile passes (``None``: never).
        requeue_after: seconds after which a ``queued`` key gets a new task in any case.
        retention: seconds a final key and its result are kept.
        max_claims: claims after which a key whose claimants all died fails.
        batch_size: keys per task the worker enqueues itself (requeues, reconcile).
        task_idle_timeout: taskiq-redis's reclaim of unacknowledged tasks.
        retry: SMTP retries (only when the server certainly did not accept the message).
        shutdown_timeout: seconds to let messages in flight finish on SIGTERM.
        redis_timeout: seconds any one Redis call may take.
        allow_unsafe_redis: run on a Redis that can lose acknowledged writes (not AOF with
            ``appendfsync always``): messages can then be sent twice (see the README).
        max_attempts: sends of one key that raise an unexpected error (a bug, a message the
            SDK cannot handle) before it ends failed with that error.
    """

    redis_url: str = field(repr=False)  # may hold Redis's password
    namespace: str = "default"
    host: str | None = None
    port: int | None = None
    tls: TlsMode = "starttls"
    region: Literal["na", "eu"] | None = None
    credentials: SmtpCredentials | None = None
    ssl_context: ssl.SSLContext | None = None
    allow_plaintext_auth: bool = False
    connections: int = 10
    batches: int = 2
    rate: float | None = None
    burst: int = 10
    lease: float = 30.0
    reconcile_every: float | None = 10.0
    requeue_after: float = 600.0
    retention: float = DEFAULT_RETENTION
    max_claims: int = DEFAULT_MAX_CLAIMS
    batch_size: int = 100
    task_idle_timeout: float = 600.0
    retry: SmtpRetry = field(default_factory=SmtpRetry)
    shutdown_timeout: float = 30.0
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    allow_unsafe_redis: bool = False
    max_attempts: int = 3


class _LeaseLost(Exception):
    """The key is no longer this worker's: never write the message."""


class _NotNow(Exception):
    """The key cannot begin now (Redis unreachable, or the ledger being recovered): hand it
    back, not counted as an attempt."""


def _temporary_auth(exc: SmtpError) -> bool:
    """A 4xx reply to AUTH (454: the server cannot check credentials now): retried, not fatal."""
    return isinstance(exc, SmtpAuthError) and exc.code is not None and 400 <= exc.code < 500


class Worker:
    """One worker process's runtime: the pool, the ledger client, the limiter, the receiver.

    Example:
        >>> worker = Worker(WorkerSettings(redis_url=url, credentials=creds, rate=50))
        >>> await worker.run(stop_event)  # until stop_event is set

    Args:
        settings: see :class:`WorkerSettings`.
    """

    def __init__(self, settings: WorkerSettings) -> None:
        if settings.connections < 1 or settings.batches < 1:
            raise ValueError("connections and batches must be at least 1")
        if not settings.lease > 0:
            raise ValueError("lease must be positive")
        if not settings.requeue_after > 0:
            raise ValueError("requeue_after must be positive")
        self.settings = settings
        self.owner = f"{WORKER_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self._identity = f"{os.getpid()}@{socket.gethostname()}"
        # The claims this process holds, as (key, token): one process may hold a stale and a
        # current claim of the same key at once, and only the current one may act.
        self._held: set[tuple[str, str]] = set()
        self._stopping = False
        self._batches = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(settings.connections)
        self._redis: Redis | None = None
        self._ledger: Ledger | None = None
        self._tasks: Tasks | None = None
        self._pool: SmtpPool | None = None
        self._limiter: RateLimiter | None = None
        self.fatal: SmtpError | None = None
        #: stopped: no lease renewal succeeded for a whole lease (Redis unreachable or
        #: refusing writes), or the heartbeat task died
        self.unreachable = False
        self._fatal_event = asyncio.Event()
        #: stopped: Redis stopped being durable while running (a failover to a server
        #: configured otherwise, a ``CONFIG SET``); ``run`` raises it once shut down
        self.unsafe: UnsafeRedisError | None = None
        self.sent = 0
        # Redis restart / rollback detection: the server's run id and the highest ledger
        # counter this process saw; begins wait on ``_verified`` while either is being checked.
        self._run_id: str | None = None
        self._seen = 0
        self._verified = asyncio.Event()
        self._verified.set()
        self._recovering: asyncio.Task[None] | None = None

    # -- tasks --------------------------------------------------------------------------------
    async def send_batch(self, keys: list[str]) -> int:
        """Send the ``queued`` keys among ``keys``; how many this call finished."""
        ledger, tasks = self._ready()
        if self._stopping:
            await tasks.kick(keys, self.settings.batch_size)  # for another worker
            return 0
        self._batches += 1
        self._idle.clear()
        claims: dict[str, Claim] = {}
        failed: set[str] = set()  # raised: their release counts as an attempt
        try:
            s = self.settings
            claims = await ledger.claim(self.owner, keys, s.lease, max_claims=s.max_claims)
            mine = {(k, c.token) for k, c in claims.items()}
            self._held.update(mine)
            done = await asyncio.gather(
                *(self._send_one(k, c) for k, c in claims.items()), return_exceptions=True
            )
            for key, item in zip(claims, done, strict=True):
                if isinstance(item, BaseException):
                    # Its key is released below if it never began, else its lease runs out
                    # and reconcile settles it (never a second send).
                    logger.error("a message of the batch failed: %r", item)
                    failed.add(key)
            return sum(item for item in done if item is True)
        finally:
            # Not finished (stopping, error): release what never began, and stop renewing
            # all of them, whether the release worked or not, so that their leases run out
            # and reconcile settles them; renewed forever, they would never end.
            left = [(k, c.token) for k, c in claims.items() if (k, c.token) in self._held]
            if left:
                try:
                    released = await ledger.release(
                        self.owner, [h for h in left if h[0] not in failed], refund=True
                    )
                    released += await ledger.release(
                        self.owner, [h for h in left if h[0] in failed]
                    )
                    if released:
                        await tasks.kick(released, self.settings.batch_size)
                except Exception as exc:
                    logger.warning("cannot release %d key(s): %r", len(left), exc)
                finally:
                    self._held.difference_update(left)
            self._batches -= 1
            if self._batches == 0:
                self._idle.set()

    async def _send_one(self, key: str, claim: Claim) -> bool:
        ledger, _ = self._ready()
        if self._pool is None:
            raise RuntimeError("the worker is not running")
        pool = self._pool
        s = self.settings
        async with self._slots:
            if self._stopping:
                return False  # released by the batch
            begun = False
            limiter = self._limiter

            async def before_mail() -> None:
                # Paced before MAIL: a session never waits inside DATA (where a server's
                # DATA timeout would turn the wait into a failure and a retry).
                if not self._verified.is_set():
                    try:
                        async with asyncio.timeout(s.lease):
                            await self._verified.wait()
                    except TimeoutError:
                        raise _NotNow(key) from None
                if limiter is not None:
                    try:
                        await limiter.acquire()
                    except RedisError as exc:
                        raise _NotNow(key) from exc

            async def before_data() -> None:
                nonlocal begun
                if self.unreachable:
                    raise _LeaseLost(key)  # our leases may be reconciled elsewhere already
                if not self._verified.is_set() or self.unsafe is not None:
                    raise _NotNow(key)
                try:
                    seq = await ledger.begin(
                        self.owner, key, claim.token, s.lease, min_seq=self._seen
                    )
                except RedisError as exc:
                    raise _NotNow(key) from exc
                if seq < 0:
                    self._suspect("the ledger counter went back")
                    raise _NotNow(key)
                if seq == 0:
                    raise _LeaseLost(key)
                self._seen = max(self._seen, seq)
                begun = True

            attempts = 0
            temporary_auth = 0
            gave_up = False
            while True:
                attempts += 1
                try:
                    outcome = await pool.send(
                        claim.body, key=key, before_data=before_data, before_mail=before_mail
                    )
                    break
                except _LeaseLost:
                    # Reconciled (or about to be): not this claim's any more.
                    self._held.discard((key, claim.token))
                    logger.warning("lost the lease of %s before its data: not sent here", key)
                    return False
                except _NotNow:
                    if begun:  # begin was recorded, then Redis failed: the lease settles it
                        self._held.discard((key, claim.token))
                    return False  # released by the batch (not an attempt)
                except SmtpError as exc:
                    if _temporary_auth(exc) and temporary_auth < 4 and not self._stopping:
                        # 454: the server cannot check credentials now; not the token's fault.
                        temporary_auth += 1
                        attempts -= 1
                        logger.warning("temporary AUTH failure, retrying: %s", exc)
                        await asyncio.sleep(min(30.0, 0.5 * 2**temporary_auth))
                        continue
                    if _temporary_auth(exc):
                        return False  # released by the batch, for later
                    if not exc.fatal:
                        raise
                    self._fatal(exc)
                    category = (
                        FailureCategory.TLS
                        if isinstance(exc, SmtpTLSError)
                        else FailureCategory.AUTH
                    )
                    if not begun:
                        return False  # released by the batch, for a worker that can log in
                    outcome = Outcome(
                        key=key, status=OutcomeStatus.FAILED, category=category, reply=str(exc)
                    )
                    break
                except Exception as exc:
                    # Anything unexpected (a bug, a message the SDK cannot handle): a bounded
                    # number of attempts, then a final result that says why; never a requeue
                    # loop. After the 354 it may have been sent: never again.
                    reason = f"{type(exc).__name__}: {exc}"
                    if begun:
                        outcome = Outcome(
                            key=key,
                            status=OutcomeStatus.FAILED,
                            category=FailureCategory.DELIVERY_UNKNOWN,
                            reply=f"an error after the server's 354 ({reason}): not resent",
                        )
                        break
                    if attempts >= s.max_attempts:
                        gave_up = True
                        outcome = Outcome(
                            key=key,
                            status=OutcomeStatus.FAILED,
                            category=FailureCategory.CANCELLED,
                            reply=f"not sent: {reason} ({attempts} attempts)",
                        )
                        break
                    logger.warning("sending %s raised %s; attempt %d", key, reason, attempts)
                    await asyncio.sleep(0.2 * 2**attempts)
            if outcome.category is FailureCategory.CANCELLED and not begun and not gave_up:
                return False  # the pool closed first: released by the batch
            await self._finish(key, claim.token, outcome)
            return True

    async def _finish(self, key: str, token: str, outcome: Outcome) -> None:
        ledger, _ = self._ready()
        for attempt in range(5):
            try:
                recorded = await ledger.finish(self.owner, key, token, outcome)
                break
            except (RedisConnectionError, RedisTimeoutError):
                if attempt == 4:
                    # Left to the lease: a ``sending`` key ends delivery_unknown, never resent.
                    logger.exception("cannot record the outcome of %s", key)
                    self._held.discard((key, token))
                    return
                await asyncio.sleep(0.2 * 2**attempt)
        self._held.discard((key, token))
        if recorded is None:
            logger.warning("%s was reconciled before its outcome (%s) was recorded", key, outcome)
        else:
            self.sent += outcome.ok

    def _suspect(self, reason: str) -> None:
        """Redis may have restarted or gone back to older data: begin nothing until the
        ledger is checked (and recovered, reconciled)."""
        self._verified.clear()
        if self._recovering is None or self._recovering.done():
            logger.warning("%s: checking the ledger before anything begins", reason)
            self._recovering = asyncio.create_task(self._verify())

    async def _verify(self) -> None:
        """Check the ledger counter against the highest this process saw; if it went back,
        every key not final ends ``delivery_unknown`` (any may have been sent); then one
        reconcile pass; then begins resume."""
        ledger, _ = self._ready()
        redis: Any = ledger.redis
        for attempt in range(1_000_000):  # until it works, or the worker stops
            try:
                run_id = (await durability(redis)).run_id
                seq = await ledger.counter()
                if seq < self._seen:
                    logger.error(
                        "Redis went back to older data (ledger counter %d, this worker saw "
                        "%d): every unfinished key ends delivery_unknown, none is resent",
                        seq,
                        self._seen,
                    )
                    settled = 0
                    for _ in range(10_000):
                        batch = await ledger.recover(self._seen)
                        if not batch:
                            break
                        settled += len(batch)
                    logger.error("%d key(s) settled as delivery_unknown", settled)
                    seq = await ledger.counter()
                await self._reconcile()
                self._run_id = run_id
                self._seen = max(self._seen, seq)
                self._verified.set()
                return
            except Exception as exc:
                logger.warning("cannot check the ledger yet: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    def _unsafe(self, problem: str, error: UnsafeRedisError) -> None:
        """Redis can lose acknowledged writes now: begin nothing more, and stop (the
        heartbeat keeps renewing what is in flight until it has drained)."""
        if self.unsafe is None:
            self.unsafe = error
            logger.error("%s: stopping this worker (messages could be sent twice)", problem)
            self._verified.clear()  # begins in progress are handed back, not started
            self._stopping = True
            self._fatal_event.set()

    def _fatal(self, exc: SmtpError) -> None:
        if self.fatal is None:
            self.fatal = exc
            logger.error("fatal SMTP error, stopping this worker: %s", exc)
            self._stopping = True
            self._fatal_event.set()

    async def reconcile(self) -> dict[str, int]:
        """One reconcile pass (see :func:`~hubspot_tx.distributed.reconcile`)."""
        return (await self._reconcile()).as_dict()

    async def _reconcile(self) -> ReconcileReport:
        ledger, tasks = self._ready()
        s = self.settings
        return await reconcile(
            ledger,
            tasks,
            batch_size=s.batch_size,
            dead_after=s.lease,
            requeue_after=s.requeue_after,
            max_claims=s.max_claims,
        )

    def _ready(self) -> tuple[Ledger, Tasks]:
        if self._ledger is None or self._tasks is None:
            raise RuntimeError("the worker is not running")
        return self._ledger, self._tasks

    # -- lifecycle ----------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Renew this process's claims and its heartbeat key every ``lease / 3``.

        Any error is survived (connection loss, but also READONLY, OOM, a bug): a heartbeat
        that died silently would let leases lapse under a working process. When no renewal
        has succeeded for a whole lease, the claims are being reconciled elsewhere: the worker
        stops beginning messages and stops.
        """
        ledger, _ = self._ready()
        lease = self.settings.lease
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            try:
                # What this process had seen before the renewal was sent: a begin answered
                # meanwhile (another connection) may have raised the counter after it ran.
                seen = self._seen
                async with asyncio.timeout(lease / 3):  # a hung call is a failed renewal
                    _, seq = await ledger.renew(
                        self.owner, list(self._held), lease, heartbeat=self._identity
                    )
                    found = await durability(ledger.redis)
                last_ok = loop.time()
                run_id = found.run_id
                if not found.safe and not unsafe_allowed(self.settings.allow_unsafe_redis):
                    self._unsafe(found.problem(), unsafe_error(found))
                if seq < seen:
                    self._suspect(f"the ledger counter went back ({seq} < {seen})")
                elif run_id != self._run_id and self._verified.is_set():
                    self._suspect("Redis restarted or failed over (its run id changed)")
                else:
                    self._seen = max(self._seen, seq)
            except Exception as exc:
                # The class and Redis's reply only: no traceback, no connection details.
                logger.warning("heartbeat failed: %s: %s", type(exc).__name__, exc)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # A cancel that arrived inside a call can come out as another error (Python
                # 3.11's asyncio.timeout, redis-py): the shutdown that asked for it waits on us.
                raise asyncio.CancelledError
            if loop.time() - last_ok >= lease:
                logger.error("no lease renewed for %g s (the lease): stopping", lease)
                self.unreachable = True
                self._stopping = True
                self._fatal_event.set()
                return
            await asyncio.sleep(lease / 3)

    async def _receive(self, broker: AsyncBroker, finish: asyncio.Event) -> None:
        """taskiq's receiver until ``finish`` is set: then it takes no more tasks and waits for
        the running ones (a stopping worker that kept taking tasks could only hand them back,
        re-kicking and re-reading them in a busy loop)."""
        s = self.settings
        broker.is_worker_process = True
        while not finish.is_set():
            receiver = Receiver(
                broker,
                max_async_tasks=s.batches,
                max_prefetch=0,
                run_startup=False,
                wait_tasks_timeout=s.shutdown_timeout,
            )
            try:
                await receiver.listen(finish)
            except Exception as exc:
                logger.warning("the task receiver failed, restarting it: %r", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finish.wait(), 1.0)

    async def _reconcile_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every * (0.75 + secrets.randbelow(500) / 1000))
            try:
                report = await self._reconcile()
            except Exception:
                logger.exception("reconcile failed")
                continue
            if any(report.as_dict().values()):
                logger.info("reconciled: %s", report)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set (or a fatal SMTP error), then shut down cleanly.

        On stop: no new message is started; messages in flight finish (up to
        ``shutdown_timeout``), claimed ones not started go back to the queue.
        """
        s = self.settings
        redis: Any = connect(s.redis_url, s.redis_timeout)
        self._redis = redis
        self._ledger = Ledger(redis, s.namespace, retention=s.retention)
        try:
            found = await check_durability(redis, allow_unsafe=s.allow_unsafe_redis)
            self._run_id = found.run_id
            self._seen = await self._ledger.counter()
        except BaseException:
            await redis.aclose()
            raise
        if not found.safe:
            logger.warning("%s: messages may be sent twice (allowed explicitly)", found.problem())
        self._tasks = make_broker(
            s.redis_url,
            self._ledger.tasks_key,
            handler=self,
            consumer_name=self.owner,
            idle_timeout=s.task_idle_timeout,
            **timeout_options(s.redis_timeout),
        )
        if s.rate is not None:
            self._limiter = RateLimiter(redis, self._ledger.limiter_key, rate=s.rate, burst=s.burst)
        self._pool = SmtpPool(
            s.host,
            s.port,
            credentials=s.credentials,
            tls=s.tls,
            region=s.region,
            ssl_context=s.ssl_context,
            allow_plaintext_auth=s.allow_plaintext_auth,
            max_connections=s.connections,
            retry=s.retry,
        )
        broker = self._tasks.broker
        finish = asyncio.Event()
        background: list[asyncio.Task[None]] = []
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self._ledger.renew(self.owner, [], s.lease, heartbeat=self._identity)
            await broker.startup()
            heartbeat = asyncio.create_task(self._heartbeat())
            background.append(heartbeat)
            if s.reconcile_every:
                background.append(asyncio.create_task(self._reconcile_loop(s.reconcile_every)))
            receiver = asyncio.create_task(self._receive(broker, finish))
            background.append(receiver)
            waiters = [
                asyncio.create_task(stop.wait()),
                asyncio.create_task(self._fatal_event.wait()),
            ]
            # The heartbeat ending for any reason is fatal: leases would lapse under us.
            await asyncio.wait([*waiters, receiver, heartbeat], return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            self._stopping = True  # begin nothing new
            finish.set()  # and take no more tasks
            if heartbeat.done() and not self.unreachable:
                self.unreachable = True
                logger.error("the heartbeat stopped (%r): stopping", heartbeat.exception())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.shutdown_timeout):
                    await self._idle.wait()
        finally:
            self._stopping = True
            finish.set()
            # The heartbeat renews our claims until the pool has drained: a message still in
            # DATA must not have its lease lapse (and end delivery_unknown) meanwhile.
            others = [task for task in background if task is not heartbeat]
            if self._recovering is not None:
                others.append(self._recovering)
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._pool.aclose(timeout=s.shutdown_timeout)
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            with contextlib.suppress(Exception):
                held = list(self._held)
                released = await self._ledger.release(self.owner, held, refund=True)
                if released:
                    await self._tasks.kick(released, s.batch_size)
                await redis.delete(self._ledger.worker_prefix + self.owner)
            with contextlib.suppress(Exception):
                await broker.shutdown()
            await redis.aclose()
        if self.unsafe is not None:
            raise self.unsafe

    def __repr__(self) -> str:
        return f"<Worker {self.owner} held={len(self._held)} stopping={self._stopping}>"
