"""How a user tests their own email code with hubspot-tx's pytest fixtures.

No other setup: ``pip install 'hubspot-tx[pytest]'`` registers them. This file runs as it is in
a new project with pytest-asyncio's default (strict) mode, where async tests carry
``@pytest.mark.asyncio`` (with ``asyncio_mode = "auto"`` the marks may go).
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest

from hubspot_tx import FailureCategory, HubSpot, SendResult, SmtpPool
from hubspot_tx.sandbox import Sandbox


async def send_receipt(pool: SmtpPool, to: str, order: str) -> bool:
    """The code under test: a receipt relayed over SMTP."""
    message = EmailMessage()
    message["From"] = "orders@shop.example.com"
    message["To"] = to
    message["Subject"] = f"Receipt {order}"
    message.set_content(f"Thanks for order {order}.")
    return (await pool.send(message)).ok


@pytest.mark.asyncio
async def test_a_receipt_is_sent(hubspot_sandbox: Sandbox, hubspot_smtp_pool: SmtpPool) -> None:
    assert await send_receipt(hubspot_smtp_pool, "ada@example.org", "A-1")
    (stored,) = hubspot_sandbox.outbox(recipient="ada@example.org")
    assert stored.subject == "Receipt A-1"
    body = stored.message.get_body()
    assert body is not None
    assert "order A-1" in body.get_content()


@pytest.mark.asyncio
async def test_a_lost_connection_is_reported(
    hubspot_sandbox: Sandbox, hubspot_smtp_pool: SmtpPool
) -> None:
    hubspot_sandbox.faults.smtp_drop("stored")  # the reply to the final "." never comes
    message = EmailMessage()
    message["From"] = "orders@shop.example.com"
    message["To"] = "ada@example.org"
    message.set_content("x")
    outcome = await hubspot_smtp_pool.send(message)
    assert outcome.category is FailureCategory.DELIVERY_UNKNOWN


@pytest.mark.asyncio
async def test_rate_limits_are_waited_out(
    hubspot_sandbox: Sandbox, hubspot_client: HubSpot
) -> None:
    hubspot_sandbox.faults.rest_429(times=2, retry_after=0.1)  # the next two REST calls: 429
    token = await hubspot_client.smtp_tokens.create(campaign_name="receipts")
    assert [r.status for r in hubspot_sandbox.requests] == [429, 429, 201]
    assert token.id in hubspot_sandbox.state.tokens


@pytest.mark.asyncio
async def test_a_welcome_single_send(hubspot_client: HubSpot) -> None:
    status = await hubspot_client.single_send.send(email_id=1001, to="bob@example.org")
    final = await hubspot_client.send_status.wait(status, timeout=10)
    assert final.send_result is SendResult.SENT


@pytest.mark.asyncio
async def test_an_address_that_bounces(
    hubspot_sandbox: Sandbox, hubspot_smtp_pool: SmtpPool
) -> None:
    # Address rules aim an error at one recipient: +bounce is refused (550), +tempfail
    # twice (451) and then accepted.
    assert await send_receipt(hubspot_smtp_pool, "ada+tempfail@example.org", "A-2")
    assert not await send_receipt(hubspot_smtp_pool, "bob+bounce@example.org", "A-3")
    assert [m.subject for m in hubspot_sandbox.outbox()] == ["Receipt A-2"]


def test_one_sandbox_for_the_session(hubspot_shared_sandbox: Sandbox) -> None:
    # A plain (sync) test: the session's sandbox runs in its own thread, reset for this test.
    assert hubspot_shared_sandbox.outbox() == []
    assert hubspot_shared_sandbox.base_url.startswith("http://127.0.0.1:")


@pytest.mark.asyncio
async def test_the_shared_sandbox_from_async_code(hubspot_shared_sandbox: Sandbox) -> None:
    async with hubspot_shared_sandbox.client(https=True) as hs:
        token = await hs.smtp_tokens.create(campaign_name="shared")
    async with hubspot_shared_sandbox.smtp_pool(token) as pool:
        assert await send_receipt(pool, "grace@example.org", "B-1")
    (stored,) = hubspot_shared_sandbox.outbox(subject="Receipt B-1")
    assert stored.rcpt_to == ("grace@example.org",)


@pytest.mark.asyncio
async def test_a_single_send_with_its_properties(
    hubspot_sandbox: Sandbox, hubspot_client: HubSpot
) -> None:
    status = await hubspot_client.single_send.send(
        email_id=1001, to="open.ada@example.org", custom_properties={"order": "A-9"}
    )
    await hubspot_client.send_status.wait(status, timeout=10)
    (sent,) = hubspot_sandbox.single_sends(to="open.ada@example.org")
    assert sent.custom_properties == {"order": "A-9"}
    assert [step.status for step in sent.timeline] == ["PENDING", "PROCESSING", "COMPLETE"]
    for _ in range(100):  # events follow the send, one step apart
        if hubspot_sandbox.events(recipient="open.ada@example.org", type="OPEN"):
            break
        await asyncio.sleep(0.02)
    kinds = [e.type for e in hubspot_sandbox.events(recipient="open.ada@example.org")]
    assert kinds == ["PROCESSED", "SENT", "DELIVERED", "OPEN"]
