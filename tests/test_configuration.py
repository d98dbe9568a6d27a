"""One configuration story: the ``HUBSPOT_*`` variables mean the same to ``HubSpot()``,
``SmtpPool()``, the CLI and the examples, and the sandbox's ``export`` line carries them all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from hubspot_tx import (
    APIConnectionError,
    ConfigurationError,
    HubSpot,
    SmtpPool,
    SmtpTLSError,
    SmtpTokenWithPassword,
)
from hubspot_tx.cli._main import build_parser
from hubspot_tx.cli._relay import _pool
from hubspot_tx.distributed import WorkerSettings
from hubspot_tx.sandbox import Sandbox

ROOT = Path(__file__).parent.parent
VARIABLES = [
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_BASE_URL",
    "HUBSPOT_CA_FILE",
    "HUBSPOT_SMTP_HOST",
    "HUBSPOT_SMTP_PORT",
    "HUBSPOT_SMTP_USER",
    "HUBSPOT_SMTP_PASSWORD",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "orders@shop.example.com"
    message["To"] = to
    message["Subject"] = "configured"
    message.set_content("hello")
    return message


async def test_hubspot_trusts_hubspot_ca_file(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", sandbox.access_token)
    monkeypatch.setenv("HUBSPOT_BASE_URL", sandbox.https_url)
    monkeypatch.setenv("HUBSPOT_CA_FILE", sandbox.ca_file)
    async with HubSpot(rate_limit=None) as hs:
        token = await hs.smtp_tokens.create(campaign_name="env")
    assert token.id in sandbox.state.tokens


async def test_rest_tls_failure_says_what_failed_and_what_to_set(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", sandbox.access_token)
    monkeypatch.setenv("HUBSPOT_BASE_URL", sandbox.https_url)
    async with HubSpot(rate_limit=None, retry=None) as hs:
        with pytest.raises(APIConnectionError) as caught:
            await hs.smtp_tokens.create(campaign_name="env")
    text = str(caught.value)
    assert f"127.0.0.1:{sandbox.https_port}" in text
    assert "certificate verify failed" in text
    assert "HUBSPOT_CA_FILE" in text


async def test_a_wrong_ca_file_is_named(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with Sandbox(rate_limit=None) as other:  # another CA: valid PEM, not this server's
        monkeypatch.setenv("HUBSPOT_CA_FILE", other.ca_file)
        async with HubSpot(
            sandbox.access_token, base_url=sandbox.https_url, rate_limit=None, retry=None
        ) as hs:
            with pytest.raises(APIConnectionError, match="certificate verify failed") as caught:
                await hs.smtp_tokens.create(campaign_name="env")
    assert other.ca_file in str(caught.value)
    missing = tmp_path / "nope.pem"
    monkeypatch.setenv("HUBSPOT_CA_FILE", str(missing))
    with pytest.raises(ValueError, match=r"nope\.pem \(\$HUBSPOT_CA_FILE"):
        HubSpot(sandbox.access_token)
    monkeypatch.setenv("HUBSPOT_CA_FILE", str(tmp_path))  # a folder exists: say what it is
    with pytest.raises(ValueError, match=r"\(\$HUBSPOT_CA_FILE\) is a folder, not a PEM file"):
        HubSpot(sandbox.access_token)


async def test_smtp_pool_reads_host_port_login_and_ca(
    sandbox: Sandbox, token: SmtpTokenWithPassword, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_SMTP_HOST", sandbox.host)
    monkeypatch.setenv("HUBSPOT_SMTP_PORT", str(sandbox.smtp_port))
    monkeypatch.setenv("HUBSPOT_SMTP_USER", token.id)
    monkeypatch.setenv("HUBSPOT_SMTP_PASSWORD", token.password.get_secret_value())
    monkeypatch.setenv("HUBSPOT_CA_FILE", sandbox.ca_file)
    async with SmtpPool() as pool:
        assert (pool.settings.host, pool.settings.port) == (sandbox.host, sandbox.smtp_port)
        outcome = await pool.send(_message("ada@example.org"))
    assert outcome.ok, outcome
    (stored,) = sandbox.outbox(recipient="ada@example.org")
    assert stored.token_id == token.id


async def test_smtp_tls_failure_says_which_variable_to_set(
    sandbox: Sandbox, token: SmtpTokenWithPassword, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_SMTP_HOST", sandbox.host)
    monkeypatch.setenv("HUBSPOT_SMTP_PORT", str(sandbox.smtp_port))
    monkeypatch.setenv("HUBSPOT_SMTP_USER", token.id)
    monkeypatch.setenv("HUBSPOT_SMTP_PASSWORD", token.password.get_secret_value())
    async with SmtpPool() as pool:
        with pytest.raises(SmtpTLSError) as caught:
            await pool.send(_message("ada@example.org"))
    assert "certificate verify failed" in str(caught.value)
    assert "HUBSPOT_CA_FILE" in str(caught.value)
    assert sandbox.outbox() == []


async def test_a_tls_failure_that_is_not_the_certificate_does_not_blame_the_ca(
    sandbox: Sandbox, token: SmtpTokenWithPassword, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The right CA, the wrong port: https:// at the HTTP port, implicit TLS at the STARTTLS port
    # (the export line's). The advice must point at the URL / port, not at $HUBSPOT_CA_FILE.
    monkeypatch.setenv("HUBSPOT_CA_FILE", sandbox.ca_file)
    http_port = sandbox.base_url.rsplit(":", 1)[1]
    async with HubSpot(
        sandbox.access_token, base_url=f"https://127.0.0.1:{http_port}", rate_limit=None
    ) as hs:
        with pytest.raises(APIConnectionError) as rest:
            await hs.smtp_tokens.create(campaign_name="env")
    monkeypatch.setenv("HUBSPOT_SMTP_HOST", sandbox.host)
    monkeypatch.setenv("HUBSPOT_SMTP_PORT", str(sandbox.smtp_port))
    monkeypatch.setenv("HUBSPOT_SMTP_USER", token.id)
    monkeypatch.setenv("HUBSPOT_SMTP_PASSWORD", token.password.get_secret_value())
    async with SmtpPool(tls="implicit", connect_timeout=5) as pool:
        with pytest.raises(SmtpTLSError) as smtp:
            await pool.send(_message("ada@example.org"))
    for caught in (rest, smtp):
        text = str(caught.value)
        assert "certificate" not in text, text
        assert "CA" not in text, text
    assert "HUBSPOT_BASE_URL" in str(rest.value)
    assert "HUBSPOT_SMTP_PORT" in str(smtp.value)
    assert sandbox.outbox() == []


def test_the_login_from_the_environment_never_goes_to_a_host_named_in_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUBSPOT_SMTP_USER", "123")
    monkeypatch.setenv("HUBSPOT_SMTP_PASSWORD", "secret")
    assert SmtpPool().credentials is not None
    assert SmtpPool("smtp.elsewhere.example").credentials is None


def test_arguments_beat_the_smtp_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # The variables name the sandbox; a host, region or port given in code names another.
    monkeypatch.setenv("HUBSPOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HUBSPOT_SMTP_PORT", "2587")

    def server(**kwargs: Any) -> tuple[str, int]:
        settings = SmtpPool(**kwargs).settings
        return settings.host, settings.port

    assert server() == ("127.0.0.1", 2587)
    assert server(region="eu") == ("smtp-eu1.hubapi.com", 587)
    assert server(region="na") == ("smtp.hubapi.com", 587)
    assert server(region="eu", tls="implicit") == ("smtp-eu1.hubapi.com", 465)
    assert server(host="mail.example.org") == ("mail.example.org", 587)
    assert server(host="mail.example.org", port=2525) == ("mail.example.org", 2525)
    assert server(port=2465, tls="implicit") == ("127.0.0.1", 2465)


async def test_arguments_beat_the_rest_and_ca_variables(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-from-the-environment")
    monkeypatch.setenv("HUBSPOT_BASE_URL", "https://127.0.0.1:9")
    monkeypatch.setenv("HUBSPOT_CA_FILE", str(tmp_path / "missing.pem"))  # would be refused
    context = sandbox.ca.client_context()
    async with HubSpot(sandbox.access_token, base_url=sandbox.https_url, ssl=context) as hs:
        assert hs.base_url == sandbox.https_url
        await hs.smtp_tokens.list()  # the token, root and trust given, not the variables'
    assert SmtpPool(sandbox.host, sandbox.smtp_port, ssl_context=context).settings.port == (
        sandbox.smtp_port
    )


def test_cli_flags_and_worker_settings_beat_the_smtp_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUBSPOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HUBSPOT_SMTP_PORT", "2587")
    monkeypatch.setenv("HUBSPOT_SMTP_USER", "123")
    monkeypatch.setenv("HUBSPOT_SMTP_PASSWORD", "secret")

    def relay(*flags: str) -> tuple[str, int]:
        args = build_parser().parse_args(["relay", "-", *flags])
        settings = _pool(args, lambda outcome: None).settings
        return settings.host, settings.port

    assert relay() == ("127.0.0.1", 2587)
    assert relay("--region", "eu") == ("smtp-eu1.hubapi.com", 587)
    assert relay("--host", "mail.example.org") == ("mail.example.org", 587)
    # The worker's SmtpPool reads the variables unless --region is given.
    assert WorkerSettings(redis_url="redis://127.0.0.1:1/0").region is None
    args = build_parser().parse_args(["worker", "--region", "eu"])
    assert args.region == "eu"
    assert build_parser().parse_args(["worker"]).region is None


async def test_the_access_token_variable_never_goes_to_a_base_url_named_in_code(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Sandbox(rate_limit=None) as elsewhere:
        monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", sandbox.access_token)
        monkeypatch.setenv("HUBSPOT_BASE_URL", sandbox.https_url)
        with pytest.raises(ConfigurationError) as caught:
            HubSpot(base_url=elsewhere.https_url)
        text = str(caught.value)
        assert "pass access_token=" in text
        assert "HUBSPOT_ACCESS_TOKEN" in text
        assert sandbox.access_token not in text
        assert isinstance(caught.value, ValueError)
        monkeypatch.delenv("HUBSPOT_BASE_URL")  # nor with no $HUBSPOT_BASE_URL at all
        with pytest.raises(ConfigurationError):
            HubSpot(base_url=elsewhere.https_url)
        for lookalike in (
            "http://api.hubapi.com",  # HubSpot's, but in clear text
            "https://api.hubapi.com.example.org",
            "https://evilhubapi.com",
        ):
            with pytest.raises(ConfigurationError):
                HubSpot(base_url=lookalike)
        # The CLI follows the same rule: exit 2, one line, nothing sent.
        code, out, err = await _cli("tokens", "list", "--base-url", elsewhere.https_url)
        assert (code, out) == (2, "")
        assert "--access-token" in err
        assert len(err.strip().splitlines()) == 1
        assert not elsewhere.requests
        # The token given for it, HubSpot's own hosts and the variable's URL are fine.
        monkeypatch.setenv("HUBSPOT_BASE_URL", sandbox.https_url)
        clients = [
            HubSpot(elsewhere.access_token, base_url=elsewhere.https_url),
            HubSpot(base_url=sandbox.https_url + "/"),
            HubSpot(base_url="https://api.hubapi.com"),
            HubSpot(base_url="https://api-eu1.hubapi.com"),
        ]
        for client in clients:
            await client.aclose()


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_bad_smtp_port_variable_is_a_clear_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_SMTP_PORT", value)
    with pytest.raises(ValueError, match=r"\$HUBSPOT_SMTP_PORT must be a port number"):
        SmtpPool()


def test_a_bad_base_url_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_BASE_URL", "api.hubapi.com")  # no scheme
    with pytest.raises(ValueError, match=r"\$HUBSPOT_BASE_URL must start with https://"):
        HubSpot("pat-x")
    with pytest.raises(ValueError, match=r"^base_url must start with https://"):
        HubSpot("pat-x", base_url="api.hubapi.com")


def test_one_smtp_login_variable_without_the_other_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUBSPOT_SMTP_USER", "123")
    with pytest.raises(ValueError, match="HUBSPOT_SMTP_PASSWORD"):
        SmtpPool()


# -- the sandbox's export line, in a shell, runs the FastAPI example -------------------------
SANDBOX_PORTS = ["--http-port", "0", "--https-port", "0", "--smtp-port", "0", "--smtps-port", "0"]

CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx
    sys.path.insert(0, "examples")
    from fastapi_app import app

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                r = await http.post("/receipts", json={"to": "ada@example.org", "order": "A-1"})
                w = await http.post("/welcome", json={"to": "bob@example.org", "first_name": "B"})
        print(json.dumps([r.status_code, r.json(), w.status_code, w.json()]))

    asyncio.run(main())
    """
)


@pytest.fixture
async def sandbox_export_line() -> AsyncIterator[tuple[str, str]]:
    """``hubspot-tx sandbox`` as a process: its printed ``export`` line and its REST URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubspot_tx.cli",
        "sandbox",
        *SANDBOX_PORTS,
        "--no-rate-limit",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        export = base_url = ""
        for _ in range(30):  # the banner is a dozen lines
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            if not line:
                break
            if line.strip().startswith("REST"):
                base_url = line.split()[1]
            if line.strip().startswith("export "):
                export = line.strip()
                break
        assert export, "the sandbox printed no export line"
        yield export, base_url
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_the_export_line_alone_runs_the_fastapi_example(
    sandbox_export_line: tuple[str, str],
) -> None:
    export, base_url = sandbox_export_line
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    script = f'{export}\nexec "$PYTHON" -c "$CLIENT"'
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", script],
        env={**env, "PYTHON": sys.executable, "CLIENT": CLIENT},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    receipt_code, receipt, welcome_code, welcome = json.loads(done.stdout.splitlines()[-1])
    assert (receipt_code, receipt["accepted"]) == (200, ["ada@example.org"]), receipt
    assert welcome_code == 200, welcome
    async with httpx.AsyncClient(base_url=f"{base_url}/_sandbox/v1", timeout=10) as http:
        messages = (await http.get("/messages", params={"recipient": "ada@example.org"})).json()
        sends = (await http.get("/single-sends")).json()
    assert [m["subject"] for m in messages["results"]] == ["Receipt for order A-1"]
    assert [s["to"] for s in sends["results"]] == ["bob@example.org"]
