"""A client that gives up on the sandbox's TLS gets no traceback printed: one INFO line."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from hubspot_tx.sandbox import Sandbox
from hubspot_tx.smtp import Envelope


async def _starttls_then(sb: Sandbox, mode: str) -> None:
    reader, writer = await asyncio.open_connection(sb.host, sb.smtp_port)
    try:
        async with asyncio.timeout(10):
            await reader.readline()
            writer.write(b"EHLO client.example\r\n")
            while not (await reader.readline()).startswith(b"250 "):
                pass
            writer.write(b"STARTTLS\r\n")
            assert (await reader.readline()).startswith(b"220")
            if mode == "garbage":  # a TLS record header, then nonsense
                writer.write(b"\x16\x03\x01\x00\x05hello")
                await writer.drain()
            elif mode == "reset":
                writer.transport.abort()
                return
            else:  # a client that does not trust the CA walks away mid-handshake
                with pytest.raises(ssl.SSLCertVerificationError):
                    await writer.start_tls(
                        ssl.create_default_context(), server_hostname="localhost"
                    )
                return
            await reader.read()  # the server closes
    finally:
        writer.close()


async def test_aborted_tls_logs_one_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Sandbox(rate_limit=None) as sb:
        for mode in ("garbage", "reset", "untrusted"):
            await _starttls_then(sb, mode)
        with pytest.raises(ssl.SSLCertVerificationError):  # the implicit-TLS port
            await asyncio.wait_for(
                asyncio.open_connection(
                    sb.host, sb.smtps_port, ssl=ssl.create_default_context(),
                    server_hostname="localhost",
                ),
                10,
            )  # fmt: skip
        async with sb.client() as hs:
            token = await hs.smtp_tokens.create(campaign_name="after-aborts")
        async with sb.smtp_pool(token) as pool:  # the server carries on
            data = b"Subject: fine\r\nMessage-ID: <ok@x>\r\n\r\nbody\r\n"
            outcome = await pool.send(
                Envelope(mail_from="s@x.org", rcpt_to=("a@x.org",), data=data)
            )
        assert outcome.ok
        for _ in range(100):  # every aborted session is over (bounded: 5 s)
            if sb.state.smtp_sessions_open == 0:
                break
            await asyncio.sleep(0.05)
        assert sb.state.smtp_sessions_open == 0
    assert [r for r in caplog.records if r.exc_info] == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    lines = [r.getMessage() for r in caplog.records if r.name == "hubspot_tx.sandbox"]
    assert len(lines) == 3
    assert all("STARTTLS handshake failed" in line for line in lines)
    assert "Traceback" not in capsys.readouterr().err
