"""Decoding: every example response of the v3 OpenAPI spec, legacy shapes, tolerance."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubspot_tx import (
    ResponseDecodeError,
    SendResult,
    SendState,
    SendStatus,
    SmtpToken,
    SmtpTokenPage,
    SmtpTokenWithPassword,
)
from hubspot_tx.models import ErrorBody, encode
from hubspot_tx.models._base import ResponseDecoder

# ../shared/spec/openapi.yml (a third-party extract of HubSpot's v3 transactional spec) as JSON.
SPEC = json.loads((Path(__file__).parent / "data" / "openapi-extract.json").read_text())
EXAMPLES: dict[str, Any] = {k: v["value"] for k, v in SPEC["components"]["examples"].items()}


def example(name: str) -> bytes:
    return msgspec.json.encode(EXAMPLES[name])


def test_every_response_example_is_covered() -> None:
    responses = {
        name
        for path in SPEC["paths"].values()
        for op in path.values()
        for resp in op["responses"].values()
        for ex in resp.get("content", {}).get("application/json", {}).get("examples", {}).values()
        for name in [ex["$ref"].rsplit("/", 1)[-1]]
    }
    assert responses == {
        "ListSmtpTokensSuccessResponse",
        "GetSmtpTokenSuccessResponse",
        "CreateSmtpTokenSuccessResponse",
        "ResetSmtpTokenPasswordSuccessResponse",
        "SendTransactionalEmailSuccessResponse",
        "ErrorResponse",
    }


def test_list_example() -> None:
    page = ResponseDecoder(SmtpTokenPage).decode(example("ListSmtpTokensSuccessResponse"))
    assert [t.id for t in page.results] == ["smtp-token-abc123", "smtp-token-def456"]
    first, second = page.results
    assert first.campaign_name == "Password Reset Emails"
    assert first.email_campaign_id == "campaign-xyz789"
    assert first.create_contact is True
    assert second.create_contact is False
    assert first.created_at == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert first.created_by == "user@example.com"
    assert first.expires_at == datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    assert page.after == "c210cC10b2tlbi1kZWY0NTY%3D"


def test_get_example() -> None:
    token = ResponseDecoder(SmtpToken).decode(example("GetSmtpTokenSuccessResponse"))
    assert token == SmtpToken(
        id="smtp-token-abc123",
        campaign_name="Password Reset Emails",
        email_campaign_id="campaign-xyz789",
        create_contact=True,
        created_at=datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        created_by="user@example.com",
    )


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("CreateSmtpTokenSuccessResponse", "smtp-password-newly-generated"),
        ("ResetSmtpTokenPasswordSuccessResponse", "smtp-password-reset-value"),
    ],
)
def test_token_with_password_examples(name: str, password: str) -> None:
    token = ResponseDecoder(SmtpTokenWithPassword).decode(example(name))
    assert token.password.get_secret_value() == password
    assert token.campaign_name
    assert token.created_at is not None
    assert token.created_at.year == 2024


def test_create_example_without_campaign_id() -> None:
    token = ResponseDecoder(SmtpTokenWithPassword).decode(example("CreateSmtpTokenSuccessResponse"))
    assert token.id == "smtp-token-ghi789"
    assert token.email_campaign_id is None


def test_send_example() -> None:
    status = ResponseDecoder(SendStatus).decode(example("SendTransactionalEmailSuccessResponse"))
    assert status == SendStatus(status_id="status-id-abc123", status=SendState.PENDING)
    assert status.send_result is None


def test_error_example() -> None:
    body = ResponseDecoder(ErrorBody).decode(example("ErrorResponse"))
    assert body.category == "VALIDATION_ERROR"
    assert body.correlation_id == "aeb5f871-7f07-4993-9211-075dc63e7cbf"
    assert body.message.startswith("Invalid input")
    assert body.links == {
        "knowledge-base": "https://www.hubspot.com/products/service/knowledge-base"
    }


LEGACY_TOKEN = (
    b'{ "userName": "hrfdvt58el@62515.smtp.hubspot.net", "password": "3432fff8eljl1249fjjasdfnv3",'
    b' "portalId": 62515, "emailCampaignId": 14862038, "createdAt": 1415660606232,'
    b' "deleted": false, "createdBy": "maxiak@hubspot.com", "appId": 22709,'
    b' "campaignName": "test Transactional Email" }'
)


def test_legacy_token_numeric_ids_and_epoch_millis() -> None:
    token = ResponseDecoder(SmtpTokenWithPassword).decode(LEGACY_TOKEN)
    assert token.id == "hrfdvt58el@62515.smtp.hubspot.net"
    assert token.email_campaign_id == "14862038"
    assert token.created_at == datetime(2014, 11, 10, 23, 3, 26, 232000, tzinfo=UTC)
    assert token.expires_at == datetime(2015, 11, 10, 23, 3, 26, 232000, tzinfo=UTC)
    assert token.password.get_secret_value() == "3432fff8eljl1249fjjasdfnv3"
    assert token.campaign_name == "test Transactional Email"


def test_numeric_token_id_becomes_a_string() -> None:
    token = ResponseDecoder(SmtpToken).decode(b'{"id": 123456, "createdAt": 0}')
    assert token.id == "123456"
    assert token.created_at == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spelling", "state"),
    [
        ("COMPLETE", SendState.COMPLETE),
        ("COMPLETED", SendState.COMPLETE),
        ("CANCELED", SendState.CANCELED),
        ("CANCELLED", SendState.CANCELED),
    ],
)
def test_both_status_spellings(spelling: str, state: SendState) -> None:
    status = ResponseDecoder(SendStatus).decode(
        b'{"statusId": "s", "status": "%s"}' % spelling.encode()
    )
    assert status.status is state
    assert status.is_terminal


def test_unknown_enum_values_are_kept() -> None:
    status = ResponseDecoder(SendStatus).decode(
        b'{"statusId": "s", "status": "ARCHIVED", "sendResult": "SOMETHING_NEW",'
        b' "requestedAt": 1700000000000, "eventId": {"id": "e", "created": "2024-01-01T00:00:00Z"}}'
    )
    assert status.status.value == "ARCHIVED"
    assert not status.status.is_known
    assert not status.is_terminal
    assert status.send_result is not None
    assert status.send_result.value == "SOMETHING_NEW"
    assert not status.send_result.is_known
    assert SendResult.SENT.is_known
    assert status.requested_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert status.event_id is not None
    assert status.event_id.created == datetime(2024, 1, 1, tzinfo=UTC)
    # Re-encoding keeps the unknown values as received.
    assert b'"sendResult":"SOMETHING_NEW"' in encode(status)


def test_unknown_fields_are_ignored() -> None:
    token = ResponseDecoder(SmtpToken).decode(b'{"id": "a", "brandNewField": {"x": [1]}}')
    assert token.id == "a"


def test_missing_required_field_is_a_typed_error() -> None:
    with pytest.raises(ResponseDecodeError, match="missing required field `id`"):
        ResponseDecoder(SmtpToken).decode(b'{"campaignName": "x"}')


def test_models_are_frozen() -> None:
    token = SmtpToken(id="a")
    with pytest.raises(AttributeError):
        token.id = "b"  # type: ignore[misc]
