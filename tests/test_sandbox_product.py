"""The sandbox as a product for users' tests: persistence across restarts, faults aimed at
addresses, seeded chaos, SMTP limits that behave like limits, one-call reset, a sandbox in a
thread."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

from hubspot_tx import HubSpot, Outcome, SmtpCredentials, SmtpPool, SmtpTokenWithPassword
from hubspot_tx.sandbox import (
    Sandbox,
    SandboxProcess,
    SandboxThread,
    SmtpRateLimit,
    sandbox_process,
)
from hubspot_tx.smtp import FailureCategory, OutcomeStatus, SmtpRetry

from .conftest import FAST_SMTP_RETRY, make_message


async def _token(sb: Sandbox, name: str = "tests") -> SmtpCredentials:
    async with sb.client() as hs:
        return SmtpCredentials.from_token(await hs.smtp_tokens.create(campaign_name=name))


def _client(proc: SandboxProcess) -> HubSpot:
    return HubSpot(proc.access_token, base_url=proc.https_url, ssl=proc.ssl_context())


async def _send(proc: SandboxProcess, token: SmtpTokenWithPassword, n: int) -> Outcome:
    credentials = SmtpCredentials.from_token(token)
    context = proc.ssl_context()
    async with SmtpPool(
        proc.smtp_host, proc.smtp_port, credentials=credentials, ssl_context=context
    ) as pool:
        return await pool.send(make_message(n))


async def test_data_dir_keeps_tokens_messages_events_and_the_password(tmp_path: Path) -> None:
    data = str(tmp_path / "sandbox-data")
    async with sandbox_process("--data", data, "--no-rate-limit") as first:
        async with _client(first) as hs:
            token = await hs.smtp_tokens.create(campaign_name="persisted")
        (await _send(first, token, 1)).raise_for_status()
        await asyncio.sleep(0.3)  # the message's events come one step apart
        ca_before = await asyncio.to_thread(Path(first.ca_file).read_bytes)

    async with sandbox_process("--data", data, "--no-rate-limit") as second:
        assert second.access_token == first.access_token
        ca_after = await asyncio.to_thread(Path(second.ca_file).read_bytes)
        assert ca_after == ca_before  # the clients of the first run still trust it
        async with _client(second) as hs:
            kept = await hs.smtp_tokens.get(token.id)
            assert kept.campaign_name == "persisted"
            page = await hs.events.list(campaign_id=token.email_campaign_id)
            assert sorted(str(e.type) for e in page.events) == ["DELIVERED", "PROCESSED", "SENT"]
        # The password issued before the restart still logs in.
        (await _send(second, token, 2)).raise_for_status()
        async with (
            aiohttp.ClientSession() as http,
            http.get(second.inspection_url + "/messages") as r,
        ):
            stored = (await r.json())["results"]
        assert [m["messageId"] for m in stored] == ["<m1@hubspot-tx.test>", "<m2@hubspot-tx.test>"]
        assert stored[0]["id"] < stored[1]["id"]


def _modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}


async def test_the_data_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "sandbox-data"
    umask = os.umask(0)  # the most permissive: what is not made private is world-writable
    try:
        async with sandbox_process("--data", str(data), "--no-rate-limit") as proc:
            async with _client(proc) as hs:
                token = await hs.smtp_tokens.create(campaign_name="private")
            (await _send(proc, token, 1)).raise_for_status()
            running = _modes(data)  # with SQLite's -wal and -shm
    finally:
        os.umask(umask)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {"sandbox.sqlite3", "sandbox.sqlite3-wal", "sandbox-ca-key.pem"} <= set(running)
    assert set(running.values()) == {0o600}, running


async def test_data_files_kept_from_before_are_made_private(tmp_path: Path) -> None:
    async with Sandbox(data_dir=tmp_path, rate_limit=None) as sb, sb.client() as hs:
        await hs.smtp_tokens.create(campaign_name="kept")
    for path in await asyncio.to_thread(lambda: list(tmp_path.iterdir())):
        path.chmod(0o644)  # as an older version left them
    async with Sandbox(data_dir=tmp_path, rate_limit=None) as sb:
        assert len(sb.state.tokens) == 1
        assert set(_modes(tmp_path).values()) == {0o600}, _modes(tmp_path)


async def test_a_data_folder_others_may_write_in_is_refused(tmp_path: Path) -> None:
    # Like a --data folder in /tmp made by another user: its owner could link the database's
    # -wal file or the CA's key to one of ours, which the sandbox would then overwrite.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (shared / "sandbox-ca-key.pem").symlink_to(victim)
    free = ["--http-port", "0", "--https-port", "0", "--smtp-port", "0", "--smtps-port", "0"]
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hubspot_tx.cli", "sandbox", "--data", str(shared), *free),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:  # it served there
            proc.kill()
            await asyncio.wait_for(proc.wait(), 30)
    assert (proc.returncode, out) == (2, b""), err
    assert err.decode().count("\n") == 1, err  # one line, which says what to do
    assert "choose a folder of yours" in err.decode()
    assert victim.read_text() == "mine\n"
    assert sorted(p.name for p in shared.iterdir()) == ["sandbox-ca-key.pem"]


async def test_in_process_restart_keeps_single_sends_and_cursors(tmp_path: Path) -> None:
    async with Sandbox(data_dir=tmp_path, rate_limit=None) as sb, sb.client() as hs:
        for n in range(3):
            await hs.smtp_tokens.create(campaign_name=f"c{n}")
        page = await hs.smtp_tokens.list(limit=2)
        status = await hs.single_send.send(email_id=12345678, to="ada@example.org", send_id="s1")
    async with Sandbox(data_dir=tmp_path, rate_limit=None) as sb, sb.client() as hs:
        assert page.after is not None
        rest = await hs.smtp_tokens.list(limit=2, after=page.after)  # the cursor still holds
        assert [t.campaign_name for t in rest.results] == ["c2"]
        again = await hs.single_send.send(email_id=12345678, to="ada@example.org", send_id="s1")
        assert str(again.send_result) == "IDEMPOTENT_IGNORE"  # sendId dedupe survives
        assert (await hs.send_status.get(status.status_id)).status_id == status.status_id
        created = await hs.smtp_tokens.create(campaign_name="c3")
        others = [t.email_campaign_id for t in sb.state.tokens.values() if t.id != created.id]
        assert int(created.email_campaign_id or 0) > max(int(c) for c in others)


async def test_address_rules_bounce_and_tempfail(sandbox: Sandbox) -> None:
    credentials = await _token(sandbox)
    async with sandbox.smtp_pool(credentials, retry=FAST_SMTP_RETRY) as pool:
        mixed = await pool.send(make_message(1, to="ada+bounce@example.org, grace@example.org"))
        bounced = await pool.send(make_message(2, to="linus+bounce@example.org"))
        flaky = await pool.send(make_message(3, to="ken+tempfail@example.org"))
        stubborn = await pool.send(make_message(4, to="rob+tempfail5@example.org"))

    assert mixed.ok
    assert mixed.accepted == ("grace@example.org",)
    assert [(r.recipient, r.code) for r in mixed.refused] == [("ada+bounce@example.org", 550)]
    assert bounced.category is FailureCategory.RECIPIENTS_REFUSED
    assert bounced.refused[0].code == 550
    assert flaky.ok  # 451 twice, then accepted on the third try
    assert flaky.attempts == 3
    assert stubborn.category is FailureCategory.TEMPORARY_EXHAUSTED  # 5 > 3 attempts
    assert stubborn.code == 451
    stored = [m.rcpt_to for m in sandbox.outbox()]
    assert stored == [("grace@example.org",), ("ken+tempfail@example.org",)]


async def _chaos_run(seed: int) -> list[tuple[str, str | None, int | None]]:
    async with Sandbox(rate_limit=None) as sb:
        credentials = await _token(sb)
        sb.faults.chaos(seed=seed, smtp_rate=0.2)
        retry = SmtpRetry(max_attempts=2, initial_backoff=0.001, max_backoff=0.001)
        outcomes: list[Outcome] = []
        async with sb.smtp_pool(credentials, max_connections=1, retry=retry) as pool:
            for n in range(40):  # one at a time: the same traffic, command for command
                outcomes.append(await pool.send(make_message(n)))
        assert len(outcomes) == 40
        stored = Counter(m.message_id for m in sb.outbox())
        for outcome in outcomes:  # each message: exactly one outcome that matches the server
            if outcome.ok:
                assert stored[outcome.message_id] == 1
            elif outcome.category is not FailureCategory.DELIVERY_UNKNOWN:
                assert stored[outcome.message_id] == 0
        return [(o.status.value, o.category, o.code) for o in outcomes]


async def test_chaos_is_reproducible_from_its_seed() -> None:
    first, again, other = await _chaos_run(11), await _chaos_run(11), await _chaos_run(12)
    assert first == again
    assert first != other
    failures = [o for o in first if o[0] == OutcomeStatus.FAILED.value]
    assert failures  # at 20 % per command, 40 messages see some
    assert len(failures) < 40


async def test_smtp_message_rate_limit_answers_421_and_paces_the_relay() -> None:
    rate, burst, count = 40.0, 4, 80
    limit = SmtpRateLimit(messages_per_second=rate, burst=burst)
    async with Sandbox(rate_limit=None, smtp_rate_limit=limit) as sb:
        credentials = await _token(sb)
        retry = SmtpRetry(max_attempts=50, initial_backoff=0.01, max_backoff=0.05)
        started = time.monotonic()
        async with sb.smtp_pool(credentials, max_connections=4, retry=retry) as pool:
            outcomes = [o async for o in pool.send_many(make_message(n) for n in range(count))]
        elapsed = time.monotonic() - started
        assert all(o.ok for o in outcomes), Counter(o.category for o in outcomes)
        assert sb.smtp_limits is not None
        assert sb.smtp_limits.refused_messages > 0  # the limit was felt, as 421s
        arrivals = sorted(m.received_at for m in sb.outbox())
        assert len(arrivals) == count
        # Never more than the bucket allows: burst + rate x time, in any window.
        span = arrivals[-1] - arrivals[0]
        assert count <= burst + rate * span + 1
        assert elapsed >= (count - burst) / rate * 0.9


async def test_smtp_connection_rate_limit_greets_with_421() -> None:
    limit = SmtpRateLimit(connections_per_second=5, burst=2)
    async with Sandbox(rate_limit=None, smtp_rate_limit=limit) as sb:
        credentials = await _token(sb)
        retry = SmtpRetry(max_attempts=30, initial_backoff=0.02, max_backoff=0.1)
        async with sb.smtp_pool(credentials, max_connections=6, retry=retry) as pool:
            outcomes = [o async for o in pool.send_many(make_message(n) for n in range(30))]
        assert all(o.ok for o in outcomes)
        assert sb.smtp_limits is not None
        assert sb.smtp_limits.refused_connections > 0
        assert sb.stats().smtp_refused_connections == sb.smtp_limits.refused_connections


async def test_drop_after_data_in_one_line(sandbox: Sandbox) -> None:
    credentials = await _token(sandbox)
    sandbox.faults.smtp_drop_after_data()
    async with sandbox.smtp_pool(credentials, retry=FAST_SMTP_RETRY) as pool:
        outcome = await pool.send(make_message(1))
    assert outcome.category is FailureCategory.DELIVERY_UNKNOWN  # never resent...
    assert len(sandbox.outbox(message_id="<m1@hubspot-tx.test>")) == 1  # ...though stored


async def test_reset_in_one_call(sandbox: Sandbox) -> None:
    credentials = await _token(sandbox)
    async with sandbox.smtp_pool(credentials) as pool:
        await pool.send(make_message(1))
    sandbox.faults.rest_429(times=None)
    sandbox.reset()
    assert sandbox.outbox() == []
    assert sandbox.state.tokens == {}
    assert sandbox.faults.rest == []
    assert sandbox.requests == type(sandbox.requests)()
    async with sandbox.client() as hs:  # no fault left armed
        assert (await hs.smtp_tokens.list()).results == []


def test_sandbox_thread_serves_sync_code_and_resets_across_threads() -> None:
    import smtplib

    with SandboxThread(rate_limit=None) as sb:

        async def create() -> SmtpCredentials:
            return await _token(sb, "thread")

        credentials = asyncio.run(create())  # another loop, another thread: over loopback
        context = sb.ssl_context()
        with smtplib.SMTP(sb.host, sb.smtp_port, timeout=10) as smtp:
            smtp.starttls(context=context)
            smtp.login(credentials.username, credentials.password.get_secret_value())
            smtp.sendmail("a@example.com", ["b@example.org"], make_message(1))
        assert [m.rcpt_to for m in sb.outbox()] == [("b@example.org",)]
        sb.reset()  # marshalled onto the sandbox's own loop
        assert sb.outbox() == []
        assert sb.state.tokens == {}
