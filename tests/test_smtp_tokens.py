"""The SMTP token lifecycle against the sandbox over real sockets (HTTP and verified HTTPS)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hubspot_tx import (
    BadRequestError,
    HubSpot,
    NotFoundError,
    SmtpToken,
    SmtpTokenPage,
    SmtpTokenWithPassword,
)
from hubspot_tx.sandbox import Sandbox


async def test_create_get_delete(hs: HubSpot) -> None:
    created = await hs.smtp_tokens.create(campaign_name="Receipts", create_contact=True)
    assert isinstance(created, SmtpTokenWithPassword)
    assert created.campaign_name == "Receipts"
    assert created.create_contact is True
    assert len(created.password.get_secret_value()) >= 20
    assert created.created_at is not None
    assert created.expires_at == created.created_at.replace(year=created.created_at.year + 1)

    fetched = await hs.smtp_tokens.get(created.id)
    assert type(fetched) is SmtpToken  # get never returns the password
    assert fetched.id == created.id
    assert fetched.email_campaign_id == created.email_campaign_id

    await hs.smtp_tokens.delete(created.id)
    with pytest.raises(NotFoundError) as info:
        await hs.smtp_tokens.get(created.id)
    assert info.value.status == 404
    assert info.value.category == "OBJECT_NOT_FOUND"
    assert info.value.correlation_id


async def test_delete_missing_token_raises_on_first_attempt(hs: HubSpot) -> None:
    with pytest.raises(NotFoundError):
        await hs.smtp_tokens.delete("no-such-token")


async def test_retried_delete_that_finds_nothing_counts_as_done(
    sandbox: Sandbox, hs_http: HubSpot
) -> None:
    token = await hs_http.smtp_tokens.create(campaign_name="x")
    # The delete happens, but the answer is lost: the retry then finds no token.
    fault = sandbox.faults.rest_commit_then_error(502, method="DELETE")
    await hs_http.smtp_tokens.delete(token.id)
    assert fault.hits == 1
    assert token.id not in sandbox.state.tokens
    deletes = [r.status for r in sandbox.requests if r.method == "DELETE"]
    assert deletes == [502, 404]


async def test_reset_password_returns_a_new_password(hs: HubSpot, sandbox: Sandbox) -> None:
    token = await hs.smtp_tokens.create(campaign_name="rotate")
    old = token.password.get_secret_value()
    reset = await hs.smtp_tokens.reset_password(token.id)
    new = reset.password.get_secret_value()
    assert reset.id == token.id
    assert new != old
    assert sandbox.state.check_login(token.id, new) is not None
    assert sandbox.state.check_login(token.id, old) is None
    with pytest.raises(NotFoundError):
        await hs.smtp_tokens.reset_password("no-such-token")


async def test_paging_across_pages_with_a_deletion_between_pages(
    hs: HubSpot, sandbox: Sandbox
) -> None:
    created = [(await hs.smtp_tokens.create(campaign_name=f"bulk-{i:02d}")).id for i in range(23)]
    seen: list[str] = []
    pages = 0
    deleted: str | None = None
    async for page in hs.smtp_tokens.list(limit=5).pages():
        pages += 1
        seen.extend(t.id for t in page.results)
        if pages == 2:
            # Delete a token not yet listed, between pages: it must not appear, nothing
            # already listed may repeat, nothing else may be skipped.
            deleted = created[17]
            await hs.smtp_tokens.delete(deleted)
    assert pages == 5  # 22 tokens remain listed: 5 + 5 + 5 + 5 + 2
    assert deleted is not None
    assert seen == [t for t in created if t != deleted]
    assert len(set(seen)) == len(seen)


async def test_async_iteration_walks_every_token(hs: HubSpot) -> None:
    ids = {(await hs.smtp_tokens.create(campaign_name="all")).id for _ in range(12)}
    listed = [t.id async for t in hs.smtp_tokens.list(limit=3)]
    assert sorted(listed) == sorted(ids)


async def test_one_page_by_hand_with_its_cursor(hs: HubSpot) -> None:
    for _ in range(4):
        await hs.smtp_tokens.create(campaign_name="manual")
    first = await hs.smtp_tokens.list(limit=3)
    assert isinstance(first, SmtpTokenPage)
    assert len(first.results) == 3
    assert first.after
    second = await hs.smtp_tokens.list(limit=3, after=first.after)
    assert len(second.results) == 1
    assert second.after is None
    assert {t.id for t in first.results}.isdisjoint(t.id for t in second.results)


async def test_filters(hs: HubSpot) -> None:
    a = await hs.smtp_tokens.create(campaign_name="alpha")
    await hs.smtp_tokens.create(campaign_name="beta")
    a2 = await hs.smtp_tokens.create(campaign_name="alpha")
    by_name = [t.id async for t in hs.smtp_tokens.list(campaign_name="alpha")]
    assert by_name == [a.id, a2.id]
    assert a.email_campaign_id is not None
    by_campaign = [t.id async for t in hs.smtp_tokens.list(email_campaign_id=a.email_campaign_id)]
    assert by_campaign == [a.id]
    assert [t async for t in hs.smtp_tokens.list(campaign_name="nobody")] == []


async def test_tampered_cursor_is_a_bad_request(hs: HubSpot) -> None:
    for _ in range(3):
        await hs.smtp_tokens.create(campaign_name="tamper")
    page = await hs.smtp_tokens.list(limit=1)
    assert page.after
    forged = page.after[:-2] + ("AA" if not page.after.endswith("AA") else "BB")
    with pytest.raises(BadRequestError) as info:
        await hs.smtp_tokens.list(limit=1, after=forged)
    assert info.value.status == 400
    assert info.value.category == "VALIDATION_ERROR"
    assert info.value.errors[0].in_ == "after"
    # A cursor is bound to its filters, too.
    with pytest.raises(BadRequestError):
        await hs.smtp_tokens.list(limit=1, after=page.after, campaign_name="tamper")


async def test_limit_is_checked_before_sending(hs: HubSpot) -> None:
    with pytest.raises(ValueError, match="between 1 and 100"):
        hs.smtp_tokens.list(limit=101)


async def test_server_checks_limit_too(sandbox: Sandbox, hs_http: HubSpot) -> None:
    session = hs_http._http._get_session()
    headers = {"Authorization": f"Bearer {sandbox.access_token}"}
    async with session.get(
        sandbox.base_url + "/marketing/v3/transactional/smtp-tokens?limit=500", headers=headers
    ) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert body["category"] == "VALIDATION_ERROR"


async def test_legacy_token_times_decode_as_aware_datetimes(hs: HubSpot) -> None:
    token = await hs.smtp_tokens.create(campaign_name="tz")
    assert token.created_at is not None
    assert token.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - token.created_at).total_seconds()) < 60
