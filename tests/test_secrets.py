"""No secret in a repr, a str, an encoded model, an exception or a log line."""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import pickle
import traceback
import urllib.parse

import msgspec
import pytest

from hubspot_tx import (
    AuthenticationError,
    HubSpot,
    HubSpotError,
    NotFoundError,
    RateLimitError,
    Secret,
    ServerError,
    SmtpTokenWithPassword,
    StaticToken,
)
from hubspot_tx.models import encode
from hubspot_tx.sandbox import Sandbox

from .conftest import FAST_RETRY


def forms(secret: str) -> list[str]:
    """The secret as it could leak: clear, base64 (as in AUTH PLAIN / Basic), URL-encoded."""
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"\0user\0" + raw).decode()[8:],  # its tail inside an AUTH PLAIN blob
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    ]


def assert_absent(secret: str, *texts: str) -> None:
    for text in texts:
        for form in forms(secret):
            assert form not in text, f"secret leaked as {form!r}"


def test_secret_type() -> None:
    s = Secret("hunter2-value")
    assert repr(s) == "Secret('**********')"
    assert str(s) == f"{s}" == "**********"
    assert s.get_secret_value() == "hunter2-value"
    assert s == Secret("hunter2-value")
    assert s != Secret("other")
    assert s != "hunter2-value"  # only another Secret compares equal
    assert Secret(s).get_secret_value() == "hunter2-value"
    assert copy.deepcopy(s) is s
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


async def test_nothing_leaks_from_a_real_session(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    access = sandbox.access_token
    texts: list[str] = []
    async with sandbox.client(https=True, retry=FAST_RETRY) as hs:
        texts += [repr(hs), str(hs), repr(hs._http.auth)]
        token = await hs.smtp_tokens.create(campaign_name="leak-check")
        password = token.password.get_secret_value()
        texts += [repr(token), str(token), encode(token).decode(), repr(token.password)]
        texts.append(repr(msgspec.structs.asdict(token)))
        with pytest.raises(TypeError) as plain:  # plain msgspec refuses, revealing nothing
            msgspec.json.encode(token)
        texts.append(str(plain.value))
        reset = await hs.smtp_tokens.reset_password(token.id)
        new_password = reset.password.get_secret_value()
        texts += [repr(reset), encode(reset).decode()]

        errors: list[HubSpotError] = []
        sandbox.faults.rest_429(times=None, retry_after=0.001)
        with pytest.raises(RateLimitError) as e1:
            await hs.smtp_tokens.get(token.id)
        errors.append(e1.value)
        sandbox.faults.clear()
        sandbox.faults.rest_error(500, times=None)
        with pytest.raises(ServerError) as e2:
            await hs.smtp_tokens.list()
        errors.append(e2.value)
        sandbox.faults.clear()
        with pytest.raises(NotFoundError) as e3:
            await hs.smtp_tokens.get("missing")
        errors.append(e3.value)
    async with HubSpot(access + "x", base_url=sandbox.base_url) as bad:
        texts.append(repr(bad))
        with pytest.raises(AuthenticationError) as e4:
            await bad.smtp_tokens.list()
        errors.append(e4.value)
    for err in errors:
        texts += [str(err), repr(err), "".join(traceback.format_exception(err))]
        texts.append(repr(vars(err)))
    texts += [r.getMessage() for r in caplog.records]
    texts.append(caplog.text)
    assert any("retry" in r.getMessage() for r in caplog.records)  # the logs were captured
    for secret in (access, password, new_password):
        assert_absent(secret, *texts)


def test_token_model_encodes_masked() -> None:
    token = msgspec.json.decode(
        b'{"id": "t", "password": "pw-123456789"}',
        type=SmtpTokenWithPassword,
        dec_hook=lambda t, v: Secret(v),
    )
    assert b"pw-123456789" not in encode(token)
    assert b'"password":"**********"' in encode(token)


def test_static_token_repr() -> None:
    auth = StaticToken("pat-na1-abcdef")
    assert_absent("pat-na1-abcdef", repr(auth), str(auth))
    with pytest.raises(ValueError, match="empty"):
        StaticToken("")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_smtp_password_never_leaks(mechanism: str, caplog: pytest.LogCaptureFixture) -> None:
    from hubspot_tx import SmtpAuthError, SmtpCredentials, SmtpPool

    from .conftest import make_message
    from .test_smtp_third_party import PASSWORD, USER, start

    caplog.set_level(logging.DEBUG)  # every logger, aiosmtpd's protocol traces included
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    srv, server = await start(pipelining=False, tls=True, exclude=(other,))
    texts: list[str] = []
    try:
        creds = SmtpCredentials(USER, PASSWORD)
        pool = SmtpPool("127.0.0.1", srv.port, credentials=creds, ssl_context=srv.client_context)
        async with pool:
            outcome = await pool.send(make_message(1))
            assert outcome.ok
            texts += [repr(creds), str(creds), repr(pool), repr(outcome), str(outcome)]
        wrong = SmtpCredentials(USER, PASSWORD + "-old")
        async with SmtpPool(
            "127.0.0.1", srv.port, credentials=wrong, ssl_context=srv.client_context
        ) as bad:
            with pytest.raises(SmtpAuthError) as info:
                await bad.send(make_message(2))
        err = info.value
        texts += [str(err), repr(err), "".join(traceback.format_exception(err)), repr(vars(err))]
        texts += [repr(wrong)]
    finally:
        server.close()
        await server.wait_closed()
    assert srv.inbox.messages  # it really logged in and sent
    # Everything this process logged, except the foreign test server's own protocol trace
    # (aiosmtpd's "mail.log"; the sandbox's server is checked below, trace included).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    texts += [r.getMessage() for r in ours]
    for secret in (PASSWORD, PASSWORD + "-old"):
        assert_absent(secret, *texts)
        # AUTH LOGIN sends the password alone in base64
        assert_absent(base64.b64encode(secret.encode()).decode(), *texts)


async def test_sandbox_smtp_session_leaks_nothing_anywhere(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    from hubspot_tx import SmtpAuthError

    from .conftest import make_message

    caplog.set_level(logging.DEBUG)
    async with sandbox.client() as hs:
        token = await hs.smtp_tokens.create(campaign_name="leak")
        async with sandbox.smtp_pool(token) as pool:
            assert (await pool.send(make_message(1))).ok
        await hs.smtp_tokens.reset_password(token.id)
        async with sandbox.smtp_pool(token) as stale:
            with pytest.raises(SmtpAuthError) as info:
                await stale.send(make_message(2))
    password = token.password.get_secret_value()
    assert any(r.name.startswith("mail.log") for r in caplog.records)  # the server traced
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    texts += ["".join(traceback.format_exception(info.value)), repr(token)]
    assert_absent(password, *texts)
    assert_absent(base64.b64encode(password.encode()).decode(), *texts)


async def test_oauth_secrets_never_leak(caplog: pytest.LogCaptureFixture) -> None:
    from hubspot_tx import Hooks, OAuthRefreshError

    caplog.set_level(logging.DEBUG)
    events: list[object] = []
    async with Sandbox(oauth_access_ttl=0.3) as sb:
        auth = sb.oauth()
        client_secret = auth._client_secret.get_secret_value()
        refresh_token = auth._refresh_token.get_secret_value()
        hooks = Hooks(on_request=[events.append], on_response=[events.append])
        async with sb.client(auth=auth, hooks=hooks, retry=FAST_RETRY) as hs:
            await hs.smtp_tokens.list()
            await asyncio.sleep(0.35)
            await hs.smtp_tokens.list()  # refreshed
            access_tokens = list(sb.state.access_tokens)
            sb.state.revoke_refresh_token(refresh_token)
            await asyncio.sleep(0.35)
            with pytest.raises(OAuthRefreshError) as info:
                await hs.smtp_tokens.list()
            texts = [repr(auth), str(auth), repr(hs), repr(events)]
    err = info.value
    texts += [str(err), repr(err), "".join(traceback.format_exception(err)), repr(vars(err))]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert len(access_tokens) == 2
    for secret in (client_secret, refresh_token, *access_tokens):
        assert_absent(secret, *texts)


async def test_demo_leaks_no_password(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from hubspot_tx.demo import run

    caplog.set_level(logging.DEBUG)
    issued: list[str] = []

    def record_passwords(sb: Sandbox) -> None:
        create, reset = sb.state.create_token, sb.state.reset_password

        def created(*args: object) -> tuple[object, str]:
            record, password = create(*args)  # type: ignore[arg-type]
            issued.append(password)
            return record, password

        def was_reset(token_id: str) -> object:
            result = reset(token_id)
            if result is not None:
                issued.append(result[1])
            return result

        sb.state.create_token = created  # type: ignore[method-assign,assignment]
        sb.state.reset_password = was_reset  # type: ignore[method-assign,assignment]
        issued.append(sb.access_token)

    assert await run(200, prepare=record_passwords) == 0
    assert len(issued) == 3  # the access token, the token's first and rotated passwords
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text, *(r.getMessage() for r in caplog.records)]
    for secret in issued:
        assert_absent(secret, *texts)
