"""The sandbox as a separate server process: REST over HTTPS and SMTP with its CA file."""

from __future__ import annotations

from hubspot_tx import HubSpot, SendResult, SmtpCredentials, SmtpPool
from hubspot_tx.sandbox import sandbox_process
from hubspot_tx.smtp import TlsMode

from .conftest import make_message


async def test_server_process_serves_and_stops_on_sigterm() -> None:
    async with sandbox_process() as info:  # exits 0 on SIGTERM, or raises
        ctx = info.ssl_context()
        async with HubSpot(info.access_token, base_url=info.https_url, ssl=ctx) as hs:
            token = await hs.smtp_tokens.create(campaign_name="process")
            # the token it made at start (its export line's SMTP login), then ours
            assert [t.id async for t in hs.smtp_tokens.list()] == [info.smtp_user, token.id]
            status = await hs.single_send.send(email_id=1001, to="a@example.com")
            final = await hs.send_status.wait(status, timeout=10)
            assert final.send_result is SendResult.SENT
        listeners: list[tuple[TlsMode, int]] = [
            ("starttls", info.smtp_port),
            ("implicit", info.smtps_port),
        ]
        for tls, port in listeners:
            async with SmtpPool(
                info.smtp_host,
                port,
                credentials=SmtpCredentials.from_token(token),
                tls=tls,
                ssl_context=ctx,
            ) as pool:
                assert (await pool.send(make_message(1))).ok
