"""The demo exits 0 only when everything it claims happened."""

from __future__ import annotations

import pytest

from hubspot_tx.demo import run
from hubspot_tx.sandbox import Sandbox


async def test_demo_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(300) == 0
    out = capsys.readouterr().out
    assert "demo OK" in out
    assert "relay: sent" in out


async def test_demo_fails_when_the_sandbox_loses_messages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def lose_some(sb: Sandbox) -> None:
        sb.faults.smtp_drop("end", times=3)  # cut after the final ".", before storing

    assert await run(300, prepare=lose_some) == 1
    captured = capsys.readouterr()
    assert "FAIL 297/300 relayed messages sent" in captured.out
    assert "demo FAILED" in captured.err
