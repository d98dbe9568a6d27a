"""The examples in ``examples/`` run against the sandbox."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from hubspot_tx import SendResult, SmtpTokenWithPassword
from hubspot_tx.sandbox import Sandbox

from .conftest import make_message

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env(sandbox: Sandbox, token: SmtpTokenWithPassword, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "HUBSPOT_ACCESS_TOKEN": sandbox.access_token,
        "HUBSPOT_BASE_URL": sandbox.https_url,
        "HUBSPOT_CA_FILE": sandbox.ca_file,
        "HUBSPOT_SMTP_HOST": sandbox.host,
        "HUBSPOT_SMTP_PORT": str(sandbox.smtp_port),
        "HUBSPOT_SMTP_USER": token.id,
        "HUBSPOT_SMTP_PASSWORD": token.password.get_secret_value(),
    }.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("env")
async def test_fastapi_example(sandbox: Sandbox) -> None:
    app = load("fastapi_app").app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            receipt = await http.post("/receipts", json={"to": "ada@example.org", "order": "A-1"})
            welcome = await http.post("/welcome", json={"to": "bob@example.org", "first_name": "B"})
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["accepted"] == ["ada@example.org"]
    assert welcome.status_code == 200, welcome.text
    (stored,) = sandbox.outbox(recipient="ada@example.org")
    assert b"Receipt for order A-1" in stored.data
    (send,) = sandbox.state.sends.values()
    assert send.request.message.send_id == "welcome-bob@example.org"
    assert send.result is SendResult.SENT
    (welcomed,) = sandbox.outbox(recipient="bob@example.org")  # the single-send, rendered
    assert welcomed.message["X-HubSpot-Email-Id"] == "1001"


@pytest.mark.usefixtures("env")
async def test_bulk_relay_example(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    for i in range(50):
        (folder / f"{i:03d}.eml").write_bytes(make_message(i))
    out = tmp_path / "results.jsonl"
    assert await load("bulk_relay").main(folder, out) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["file"] for line in lines) == [f"{i:03d}.eml" for i in range(50)]
    assert {line["status"] for line in lines} == {"sent"}
    assert len(sandbox.state.messages) == 50
    assert {m.mail_from for m in sandbox.state.messages} == {"bounces@shop.example.com"}
