"""OAuth: access tokens refreshed before expiry and after a 401, once for all callers."""

from __future__ import annotations

import asyncio
import time

import pytest

from hubspot_tx import OAuthRefreshError, OAuthTokens
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY


async def test_first_call_fetches_a_token_then_reuses_it() -> None:
    async with Sandbox() as sb:
        refreshed: list[OAuthTokens] = []
        auth = sb.oauth(on_refresh=refreshed.append)
        async with sb.client(auth=auth, retry=FAST_RETRY) as hs:
            await hs.smtp_tokens.list()
            await hs.smtp_tokens.list()
        assert sb.state.oauth_refreshes == 1
        assert len(refreshed) == 1
        assert refreshed[0].expires_in == 1800


async def test_a_token_expiring_mid_run_is_refreshed_once_for_50_callers() -> None:
    async with Sandbox(oauth_access_ttl=1.0) as sb:
        auth = sb.oauth()
        async with sb.client(auth=auth, retry=FAST_RETRY) as hs:
            await hs.smtp_tokens.list()  # token #1, valid for 1 s
            await asyncio.sleep(1.1)
            results = await asyncio.gather(*(hs.smtp_tokens.list() for _ in range(50)))
        assert len(results) == 50
        assert sb.state.oauth_refreshes == 2
        assert auth.refreshes == 2
        assert not [r for r in sb.requests if r.status == 401]  # refreshed before expiry


async def test_a_401_refreshes_once_for_50_callers_then_retries() -> None:
    async with Sandbox(oauth_access_ttl=60.0) as sb:
        auth = sb.oauth()
        async with sb.client(auth=auth, retry=FAST_RETRY) as hs:
            await hs.smtp_tokens.list()
            # HubSpot ends the token early (revocation of the access token, clock skew...).
            for token in sb.state.access_tokens:
                sb.state.access_tokens[token] = time.time() - 1
            results = await asyncio.gather(*(hs.smtp_tokens.list() for _ in range(50)))
        assert len(results) == 50
        assert sb.state.oauth_refreshes == 2
        unauthorized = [r for r in sb.requests if r.status == 401]
        assert 1 <= len(unauthorized) <= 50  # each caller at most once


async def test_a_revoked_refresh_token_gives_one_typed_error() -> None:
    async with Sandbox(oauth_access_ttl=0.5) as sb:
        auth = sb.oauth()
        async with sb.client(auth=auth, retry=FAST_RETRY) as hs:
            await hs.smtp_tokens.list()
            sb.state.revoke_refresh_token(auth._refresh_token.get_secret_value())
            await asyncio.sleep(0.6)
            outcomes = await asyncio.gather(
                *(hs.smtp_tokens.list() for _ in range(20)), return_exceptions=True
            )
            with pytest.raises(OAuthRefreshError, match="BAD_REFRESH_TOKEN"):
                await hs.smtp_tokens.list()
        assert all(isinstance(o, OAuthRefreshError) for o in outcomes)
        assert sb.state.oauth_refreshes == 1  # the failed refresh was asked for once only
        assert isinstance(outcomes[0], OAuthRefreshError)
        assert outcomes[0].status == 400


async def test_wrong_client_secret() -> None:
    async with Sandbox() as sb:
        good = sb.oauth()
        from hubspot_tx import OAuth

        bad = OAuth(client_id=good.client_id, client_secret="nope", refresh_token="x")
        async with sb.client(auth=bad, retry=FAST_RETRY) as hs:
            with pytest.raises(OAuthRefreshError, match="BAD_CLIENT_SECRET"):
                await hs.smtp_tokens.list()


async def test_a_remembered_refusal_repeats_hubspots_status_and_category() -> None:
    # The dated token endpoints' categories are undocumented: the error a later call gets must
    # be the one HubSpot gave, not a category the client assumes.
    async with Sandbox() as sb:
        async with sb.client(auth=sb.oauth(), retry=FAST_RETRY) as hs:
            sb.faults.rest_error(401, times=1, path="/oauth/2026-09/token")
            errors = []
            for _ in range(2):
                with pytest.raises(OAuthRefreshError) as caught:
                    await hs.smtp_tokens.list()
                errors.append(caught.value)
        assert [(e.status, e.category) for e in errors] == [(401, "INTERNAL_ERROR")] * 2
        assert sb.state.oauth_refreshes == 0  # refused once, not asked again
