"""The ledger: one Redis hash per message key, moved between states only by Lua scripts.

States and transitions (every arrow is one atomic script)::

    (absent) --submit--> queued --claim--> claimed --begin--> sending --finish--> sent | failed
                           ^                  |                  |
                           +----release-------+                  |
                           +----expire (lease lost) <------------+-- expire: failed
                                                                        (delivery_unknown)

``claimed`` means a worker owns the key but has not reached the server's 354 with it: if
the worker dies, the message certainly did not reach the server and it is queued again.
``sending`` is recorded *before* any byte of the message is written after the 354: if the
worker dies then, the message may have been accepted, so it ends ``delivery_unknown`` and is
never sent again. A final state is written once (``finish`` and ``expire`` refuse to touch a
final key); with it the body is deleted, the outcome is appended to the results stream, and
the key gets its retention TTL, within which submitting it again is a no-op.

Every claim gets a random *token* (hash field ``t``): ``begin``, ``finish``, ``renew`` and
``release`` act only for the holder of the current claim's token, not merely its owner. One
worker process may claim the same key twice (its first claim expired and was requeued while a
coroutine still waited for the 354); the stale coroutine's token no longer matches, so it can
never begin, and the message is never written twice. ``begin`` also refuses a claim whose
lease ran out (Redis time): a worker that could not renew must not start writing.

Every key shares one hash tag (``{namespace}``), so all of a namespace lives in one slot.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ..smtp import Outcome

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_RETENTION", "Claim", "ExpiryReport", "KeyInfo", "KeyState", "Ledger"]

DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds a final key and its result are kept (resubmitting it within them is a no-op)."""
DEFAULT_MAX_CLAIMS = 5
"""Claims of a key whose workers all died before its 354: then it fails (``cancelled``)."""


class KeyState(enum.StrEnum):
    """Where a message key is in the ledger."""

    QUEUED = "queued"  #: stored, waiting for a worker
    CLAIMED = "claimed"  #: a worker owns it; nothing of it has reached the server
    SENDING = "sending"  #: the server said 354: the message may reach it from now on
    SENT = "sent"  #: final: accepted for at least one recipient
    FAILED = "failed"  #: final: not sent, or ``delivery_unknown``

    @property
    def final(self) -> bool:
        """True for ``sent`` and ``failed``."""
        return self in (KeyState.SENT, KeyState.FAILED)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the ledger holds for one key (see :meth:`Ledger.info`).

    Attributes:
        key: the message key.
        state: its state.
        owner: the worker that holds it (``claimed`` / ``sending``), else ``None``.
        lease_ms: when its lease expires, Redis time in ms (``claimed`` / ``sending``).
        claims: how many times a worker claimed it.
        has_body: whether its body is still stored (never once final).
        outcome: the final outcome (``sent`` / ``failed``).
        result_id: the id of its entry in the results stream (once final).
        ttl_ms: milliseconds until it is forgotten (``None``: kept until final).
    """

    key: str
    state: KeyState
    owner: str | None
    lease_ms: int | None
    claims: int
    has_body: bool
    outcome: Outcome | None
    result_id: str | None
    ttl_ms: int | None


@dataclass(frozen=True, slots=True)
class Claim:
    """One claimed key: its body, and the token of this claim (see the module docstring).

    Attributes:
        body: the message.
        token: this claim's token; every later step of the key is made with it.
    """

    body: bytes
    token: str


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    """What :meth:`Ledger.expire` did with the keys whose lease ran out.

    Attributes:
        retry: ``claimed`` keys put back to ``queued`` (never reached the server).
        unknown: ``sending`` keys made final ``delivery_unknown`` (never resent).
        abandoned: keys claimed too often by workers that died; made final ``cancelled``.
    """

    retry: list[str]
    unknown: list[str]
    abandoned: list[str]


# Shared by every script: Redis time in ms, and the one way a key becomes final.
_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The key keeps the retention its producer stored at submit ('e'); ``retention`` (the
-- finisher's own) is for keys without one. The results stream is trimmed by the longer of
-- the two, so a short-lived key never trims the entries of longer-lived ones early.
local function finalize(h, k, status, json, now, retention, queued, leases, results)
  local keep = tonumber(redis.call('HGET', h, 'e') or '') or retention
  redis.call('HSET', h, 's', status, 'r', json)
  redis.call('HDEL', h, 'b', 'o', 'l', 't')
  redis.call('ZREM', leases, k)
  redis.call('ZREM', queued, k)
  local id = redis.call('XADD', results, 'MINID', '~',
                        tostring(now - math.max(keep, retention)), '*',
                        'k', k, 's', status, 'r', json)
  redis.call('HSET', h, 'x', id)
  redis.call('PEXPIRE', h, keep)
  return id
end
"""

# KEYS: queued. ARGV: prefix, retention_ms, then key, body pairs.
# -> 'new' or the existing state, per pair.
_SUBMIT = """
local now = now_ms()
local out = {}
for i = 3, #ARGV, 2 do
  local k = ARGV[i]
  local h = ARGV[1] .. k
  local s = redis.call('HGET', h, 's')
  if s then
    out[#out + 1] = s
  else
    redis.call('HSET', h, 's', 'queued', 'b', ARGV[i + 1], 'q', now, 'c', 0, 'e', ARGV[2])
    redis.call('ZADD', KEYS[1], now, k)
    out[#out + 1] = 'new'
  end
end
return out
"""

# KEYS: queued, leases, results. ARGV: prefix, owner, lease_ms, token, max_claims,
# retention_ms, keys...
# -> key, body, key, body ... (every key claimed now gets the token). A queued key already
#    claimed ``max_claims`` times (each claim ended without a result: released after an error,
#    or its worker died) is not claimed again: it ends failed (``cancelled``).
_CLAIM = """
local now = now_ms()
local expiry = now + tonumber(ARGV[3])
local out = {}
for i = 7, #ARGV do
  local k = ARGV[i]
  local h = ARGV[1] .. k
  local f = redis.call('HMGET', h, 's', 'c')
  if f[1] == 'queued' then
    if tonumber(f[2] or '0') >= tonumber(ARGV[5]) then
      local json = cjson.encode({key = k, status = 'failed', category = 'cancelled',
        reply = "not sent: claimed " .. f[2] .. " times without a result (errors or lost "
          .. "workers before the server's 354)"})
      finalize(h, k, 'failed', json, now, tonumber(ARGV[6]), KEYS[1], KEYS[2], KEYS[3])
    else
      redis.call('HSET', h, 's', 'claimed', 'o', ARGV[2], 'l', expiry, 't', ARGV[4])
      redis.call('HINCRBY', h, 'c', 1)
      redis.call('ZREM', KEYS[1], k)
      redis.call('ZADD', KEYS[2], expiry, k)
      out[#out + 1] = k
      out[#out + 1] = redis.call('HGET', h, 'b')
    end
  end
end
return out
"""

# KEYS: leases, seq. ARGV: prefix, owner, token, lease_ms, key, min_seq.
# -> the ledger counter after this begin (> 0) if the key is (now) ``sending`` under this
#    claim; 0 if the claim is not current, or its lease ran out (even if not yet reconciled:
#    its holder could not renew it); -1 if the ledger counter is below ``min_seq``, the highest
#    value the caller saw: Redis went back to older data, and nothing may begin.
_BEGIN = """
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if cur < tonumber(ARGV[6]) then
  return -1
end
local h = ARGV[1] .. ARGV[5]
local f = redis.call('HMGET', h, 's', 'o', 't', 'l')
if f[2] ~= ARGV[2] or f[3] ~= ARGV[3] or (f[1] ~= 'claimed' and f[1] ~= 'sending') then
  return 0
end
local now = now_ms()
if tonumber(f[4]) <= now then
  return 0
end
local expiry = now + tonumber(ARGV[4])
redis.call('HSET', h, 's', 'sending', 'l', expiry)
redis.call('ZADD', KEYS[1], expiry, ARGV[5])
return redis.call('INCR', KEYS[2])
"""

# KEYS: queued, leases, results. ARGV: prefix, owner, token, key, status, json, retention_ms.
# -> the results-stream id, or false if the key is not this claim's to finish (or final).
# An expired lease not yet reconciled is still this claim's: nobody else can hold the key.
_FINISH = """
local h = ARGV[1] .. ARGV[4]
local f = redis.call('HMGET', h, 's', 'o', 't')
if f[2] ~= ARGV[2] or f[3] ~= ARGV[3] or (f[1] ~= 'claimed' and f[1] ~= 'sending') then
  return false
end
return finalize(h, ARGV[4], ARGV[5], ARGV[6], now_ms(), tonumber(ARGV[7]),
                KEYS[1], KEYS[2], KEYS[3])
"""

# KEYS: leases, heartbeat, seq. ARGV: prefix, owner, lease_ms, heartbeat value, key, token, ...
# -> {how many keys were renewed, the ledger counter}. Also (re)sets the owner's heartbeat.
_RENEW = """
local expiry = now_ms() + tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
local n = 0
for i = 5, #ARGV, 2 do
  local h = ARGV[1] .. ARGV[i]
  local f = redis.call('HMGET', h, 's', 'o', 't')
  if f[2] == ARGV[2] and f[3] == ARGV[i + 1] and (f[1] == 'claimed' or f[1] == 'sending') then
    redis.call('HSET', h, 'l', expiry)
    redis.call('ZADD', KEYS[1], expiry, ARGV[i])
    n = n + 1
  end
end
return {n, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""

# KEYS: queued, leases. ARGV: prefix, owner, refund, key, token, ...
# -> the keys put back to ``queued``. Only ``claimed`` keys of these claims: a ``sending`` one
#    may have reached the server. The claim counter goes back only with ``refund`` = 1 (a
#    stopping worker hands keys over); a release after an error counts as an attempt.
_RELEASE = """
local now = now_ms()
local out = {}
for i = 4, #ARGV, 2 do
  local k = ARGV[i]
  local h = ARGV[1] .. k
  local f = redis.call('HMGET', h, 's', 'o', 't')
  if f[1] == 'claimed' and f[2] == ARGV[2] and f[3] == ARGV[i + 1] then
    redis.call('HSET', h, 's', 'queued', 'q', now)
    redis.call('HDEL', h, 'o', 'l', 't')
    if ARGV[3] == '1' then
      redis.call('HINCRBY', h, 'c', -1)
    end
    redis.call('ZREM', KEYS[2], k)
    redis.call('ZADD', KEYS[1], now, k)
    out[#out + 1] = k
  end
end
return out
"""

# KEYS: queued, leases, results. ARGV: prefix, retention_ms, limit, max_claims.
# -> {retry keys, unknown keys, abandoned keys}
_EXPIRE = """
local now = now_ms()
local retention = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local retry, unknown, abandoned = {}, {}, {}
for _, k in ipairs(due) do
  local h = ARGV[1] .. k
  local f = redis.call('HMGET', h, 's', 'o', 'c', 'l')
  if (f[1] == 'claimed' or f[1] == 'sending') and tonumber(f[4]) <= now then
    if f[1] == 'sending' then
      local json = cjson.encode({key = k, status = 'failed', category = 'delivery_unknown',
        reply = "the worker " .. tostring(f[2]) .. " was lost after the server's 354 "
          .. "(lease expired): the message may have been accepted; not resent"})
      finalize(h, k, 'failed', json, now, retention, KEYS[1], KEYS[2], KEYS[3])
      unknown[#unknown + 1] = k
    elseif tonumber(f[3]) >= tonumber(ARGV[4]) then
      local json = cjson.encode({key = k, status = 'failed', category = 'cancelled',
        reply = "not sent: " .. f[3] .. " workers died holding it before the server's 354"})
      finalize(h, k, 'failed', json, now, retention, KEYS[1], KEYS[2], KEYS[3])
      abandoned[#abandoned + 1] = k
    else
      redis.call('HSET', h, 's', 'queued', 'q', now)
      redis.call('HDEL', h, 'o', 'l', 't')
      redis.call('ZREM', KEYS[2], k)
      redis.call('ZADD', KEYS[1], now, k)
      retry[#retry + 1] = k
    end
  elseif f[1] ~= 'claimed' and f[1] ~= 'sending' then
    redis.call('ZREM', KEYS[2], k)  -- a leftover entry: the key is final or gone
  end
end
return {retry, unknown, abandoned}
"""

# KEYS: queued. ARGV: older_than_ms, limit. -> keys ``queued`` for longer (their time reset).
_STALE = """
local now = now_ms()
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]),
                        'LIMIT', 0, tonumber(ARGV[2]))
for _, k in ipairs(keys) do
  redis.call('ZADD', KEYS[1], now, k)
end
return keys
"""

# KEYS: queued, leases, results, seq. ARGV: prefix, retention_ms, limit, new_seq.
# -> the keys made final ``delivery_unknown``: every key not final. Redis went back to older
#    data: any of them may have been sent after that data was written. The counter is set to
#    ``new_seq`` (past what any worker saw) once nothing is left, so that recovery ends.
_RECOVER = """
local now = now_ms()
local out = {}
local function settle(k)
  local h = ARGV[1] .. k
  local s = redis.call('HGET', h, 's')
  if s == 'queued' or s == 'claimed' or s == 'sending' then
    local json = cjson.encode({key = k, status = 'failed', category = 'delivery_unknown',
      reply = "Redis restarted with older data (it lost acknowledged writes): the message "
        .. "may have been sent before; not resent"})
    finalize(h, k, 'failed', json, now, tonumber(ARGV[2]), KEYS[1], KEYS[2], KEYS[3])
    out[#out + 1] = k
  end
end
for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)) do settle(k) end
for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do settle(k) end
if #out == 0 then
  local cur = tonumber(redis.call('GET', KEYS[4]) or '0')
  if cur < tonumber(ARGV[4]) then redis.call('SET', KEYS[4], ARGV[4]) end
end
return out
"""

_OUTCOME = msgspec.json.Decoder(Outcome)
_ENCODE = msgspec.json.Encoder()


_Arg = str | int | bytes


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Ledger:
    """The Redis ledger of one namespace: every message key's state, body and result.

    Args:
        redis: a ``redis.asyncio.Redis`` client (``decode_responses=False``).
        namespace: separates relays sharing one Redis (keys ``hstx:{namespace}:...``).
        retention: seconds a final key and its result are kept: for the keys this ledger
            submits, whoever finishes them; for keys stored without one (older ledgers), by
            the ledger that finishes them.
    """

    def __init__(
        self, redis: Redis, namespace: str = "default", *, retention: float = DEFAULT_RETENTION
    ) -> None:
        if not namespace or any(c in namespace for c in "{}: "):
            raise ValueError(f"namespace must be a non-empty word, not {namespace!r}")
        if retention <= 0:
            raise ValueError("retention must be positive")
        self.redis = redis
        self.namespace = namespace
        self.retention_ms = int(retention * 1000)
        base = f"hstx:{{{namespace}}}:"
        self.prefix = base + "m:"  #: + key: the hash of one message
        self.queued_key = base + "queued"  #: zset of ``queued`` keys by time queued (ms)
        self.leases_key = base + "leases"  #: zset of held keys by lease expiry (ms)
        self.results_key = base + "results"  #: the results stream
        self.tasks_key = base + "tasks"  #: the task stream of the taskiq broker
        self.limiter_key = base + "limit"  #: the shared rate limiter's state
        self.worker_prefix = base + "w:"  #: + owner: a live worker's heartbeat
        self.seq_key = base + "seq"  #: the ledger counter: +1 per begin, never lowered
        reg = redis.register_script
        self._submit = reg(_COMMON + _SUBMIT)
        self._claim = reg(_COMMON + _CLAIM)
        self._begin = reg(_COMMON + _BEGIN)
        self._finish = reg(_COMMON + _FINISH)
        self._renew = reg(_COMMON + _RENEW)
        self._release = reg(_COMMON + _RELEASE)
        self._expire = reg(_COMMON + _EXPIRE)
        self._stale = reg(_COMMON + _STALE)
        self._recover = reg(_COMMON + _RECOVER)

    async def submit(self, items: Sequence[tuple[str, bytes]]) -> list[KeyState | None]:
        """Store ``(key, body)`` pairs not yet in the ledger, as ``queued``, in one call.

        Returns, per pair, ``None`` if it was stored now, else the state the key already had
        (its body is then ignored: a key is sent at most once within the retention window).
        The key keeps this ledger's ``retention`` once final, whoever finishes it.
        """
        if not items:
            return []
        argv: list[_Arg] = [self.prefix, self.retention_ms]
        for key, body in items:
            argv += [key, body]
        states = await self._submit(keys=[self.queued_key], args=argv)
        return [None if _str(s) == "new" else KeyState(_str(s)) for s in states]

    async def claim(
        self,
        owner: str,
        keys: Iterable[str],
        lease: float,
        *,
        max_claims: int = DEFAULT_MAX_CLAIMS,
    ) -> dict[str, Claim]:
        """Claim the ``queued`` keys among ``keys`` for ``owner``: ``{key: Claim}`` of those.

        The claims of one call share one fresh random token (a key is claimed at most once
        per call, so each claim of a key still has its own). A key already claimed
        ``max_claims`` times without a result ends failed (``cancelled``) instead.
        """
        token = secrets.token_hex(8)
        head: list[_Arg] = [self.prefix, owner, int(lease * 1000), token, max_claims]
        args: list[_Arg] = [*head, self.retention_ms, *keys]
        if len(args) == len(head) + 1:
            return {}
        keys_ = [self.queued_key, self.leases_key, self.results_key]
        flat = await self._claim(keys=keys_, args=args)
        return {_str(flat[i]): Claim(bytes(flat[i + 1]), token) for i in range(0, len(flat), 2)}

    async def begin(
        self, owner: str, key: str, token: str, lease: float, *, min_seq: int = 0
    ) -> int:
        """Mark ``key`` ``sending`` (the message may reach the server from now on).

        Returns the ledger counter after it (> 0) if ``owner`` holds it under the claim
        ``token`` and its lease has not run out; 0 otherwise (never send it then); -1 when the
        counter is below ``min_seq`` (the highest the caller saw): Redis went back to older
        data, nothing may begin until :meth:`recover` has run.
        """
        args: list[_Arg] = [self.prefix, owner, token, int(lease * 1000), key, min_seq]
        return int(await self._begin(keys=[self.leases_key, self.seq_key], args=args))

    async def counter(self) -> int:
        """The ledger counter (+1 per begin; never lowered except by a Redis rollback)."""
        value = await self.redis.get(self.seq_key)
        return 0 if value is None else int(value)

    async def recover(self, seen: int, *, limit: int = 1000) -> list[str]:
        """After Redis went back to older data: every key not final ends ``delivery_unknown``
        (any may have been sent after the data Redis restarted from), never sent again.

        ``seen`` is the highest counter a worker saw; once nothing is left, the counter is set
        past it. Returns the keys settled now (call again until it returns none).
        """
        new_seq = seen + 1_000_000_000
        args: list[_Arg] = [self.prefix, self.retention_ms, limit, new_seq]
        keys = [self.queued_key, self.leases_key, self.results_key, self.seq_key]
        return [_str(k) for k in await self._recover(keys=keys, args=args)]

    async def finish(self, owner: str, key: str, token: str, outcome: Outcome) -> str | None:
        """Record the final outcome of a key ``owner`` holds under ``token``, once: the
        results-stream id, or ``None`` if that claim is no longer current (its lease expired
        and it was reconciled)."""
        status = "sent" if outcome.ok else "failed"
        args: list[_Arg] = [
            self.prefix,
            owner,
            token,
            key,
            status,
            _ENCODE.encode(outcome),
            self.retention_ms,
        ]
        keys = [self.queued_key, self.leases_key, self.results_key]
        result = await self._finish(keys=keys, args=args)
        return None if result is None else _str(result)

    async def renew(
        self,
        owner: str,
        held: Iterable[tuple[str, str]],
        lease: float,
        *,
        heartbeat: str = "",
    ) -> tuple[int, int]:
        """Extend the lease of the ``(key, token)`` claims ``owner`` holds, and its heartbeat
        key: how many claims were still current, and the ledger counter."""
        args: list[_Arg] = [self.prefix, owner, int(lease * 1000), heartbeat or owner]
        for key, token in held:
            args += [key, token]
        keys_ = [self.leases_key, self.worker_prefix + owner, self.seq_key]
        renewed, seq = await self._renew(keys=keys_, args=args)
        return int(renewed), int(seq)

    async def release(
        self, owner: str, held: Iterable[tuple[str, str]], *, refund: bool = False
    ) -> list[str]:
        """Put ``owner``'s ``claimed`` ``(key, token)`` claims back to ``queued`` (never
        ``sending`` ones): the keys released.

        The release counts as one of the key's ``max_claims`` attempts unless ``refund``
        (a worker that is stopping hands its keys over: no attempt was made).
        """
        args: list[str] = [self.prefix, owner, "1" if refund else "0"]
        for key, token in held:
            args += [key, token]
        if len(args) == 3:
            return []
        out = await self._release(keys=[self.queued_key, self.leases_key], args=args)
        return [_str(k) for k in out]

    async def expire(
        self, *, limit: int = 1000, max_claims: int = DEFAULT_MAX_CLAIMS
    ) -> ExpiryReport:
        """Settle up to ``limit`` keys whose lease ran out (their worker is gone or stuck)."""
        args: list[_Arg] = [self.prefix, self.retention_ms, limit, max_claims]
        keys = [self.queued_key, self.leases_key, self.results_key]
        retry, unknown, abandoned = await self._expire(keys=keys, args=args)
        return ExpiryReport(
            [_str(k) for k in retry], [_str(k) for k in unknown], [_str(k) for k in abandoned]
        )

    async def stale_queued(self, older_than: float, *, limit: int = 1000) -> list[str]:
        """Keys ``queued`` for more than ``older_than`` seconds (their time is reset)."""
        args = [int(older_than * 1000), limit]
        return [_str(k) for k in await self._stale(keys=[self.queued_key], args=args)]

    async def info(self, key: str) -> KeyInfo | None:
        """What the ledger holds for ``key`` (``None`` if nothing)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.prefix + key, ["s", "o", "l", "c", "r", "x"])
        pipe.hexists(self.prefix + key, "b")
        pipe.pttl(self.prefix + key)
        (state, owner, lease, claims, result, result_id), has_body, ttl = await pipe.execute()
        if state is None:
            return None
        return KeyInfo(
            key=key,
            state=KeyState(_str(state)),
            owner=None if owner is None else _str(owner),
            lease_ms=None if lease is None else int(lease),
            claims=int(claims or 0),
            has_body=bool(has_body),
            outcome=None if result is None else _OUTCOME.decode(result),
            result_id=None if result_id is None else _str(result_id),
            ttl_ms=None if ttl < 0 else int(ttl),
        )

    async def states(self, keys: Sequence[str]) -> list[KeyState | None]:
        """The state of each of ``keys`` (``None``: unknown or expired), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.prefix + key, "s")
        return [None if s is None else KeyState(_str(s)) for s in await pipe.execute()]

    async def owner_heartbeat(self, owner: str) -> str | None:
        """The heartbeat value of a live worker (``pid@host``), ``None`` if it is gone."""
        value = await self.redis.get(self.worker_prefix + owner)
        return None if value is None else _str(value)

    def __repr__(self) -> str:
        return f"<Ledger namespace={self.namespace!r} retention={self.retention_ms / 1000:g}s>"
