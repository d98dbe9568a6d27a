"""E. Decoding a response body: a 100-token list page and a single token.

The SDK's msgspec decoders beside hubspot-api-client's ``ApiClient.deserialize`` (on a fake
response), hubspot-sdk's pydantic models (its default non-validating ``construct_type`` and the
strict ``validate_type``), a plain pydantic v2 model (``model_validate_json``) and
``json.loads`` + a dataclass. Every decoder yields typed objects with parsed datetimes.

    python benchmarks/bench_decode.py [--quick] [--json out.json]
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from _common import Json, Meter, Sample, Variant, alternate, cli, table
from pydantic import BaseModel, ConfigDict, Field

from hubspot_tx.models.smtp_tokens import smtp_token_decoder, smtp_token_page_decoder


def token(i: int) -> dict[str, Any]:
    return {
        "id": str(100_000_000 + i),
        "campaignName": f"campaign-{i}",
        "emailCampaignId": str(900_000 + i),
        "createContact": i % 2 == 0,
        "createdAt": f"2026-01-{1 + i % 28:02d}T10:{i % 60:02d}:00.000Z",
        "createdBy": "dev@example.com",
    }


PAGE = json.dumps(
    {
        "results": [token(i) for i in range(100)],
        "paging": {"next": {"after": "MTAw", "link": "https://api.hubapi.com/?after=MTAw"}},
    }
).encode()
ONE = json.dumps(token(7)).encode()


# -- plain pydantic v2 -------------------------------------------------------------------------
class PydToken(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    campaign_name: str = Field("", alias="campaignName")
    email_campaign_id: str | None = Field(None, alias="emailCampaignId")
    create_contact: bool = Field(False, alias="createContact")
    created_at: datetime | None = Field(None, alias="createdAt")
    created_by: str | None = Field(None, alias="createdBy")


class PydNext(BaseModel):
    after: str
    link: str | None = None


class PydPaging(BaseModel):
    next: PydNext | None = None


class PydPage(BaseModel):
    results: list[PydToken]
    paging: PydPaging | None = None


# -- json.loads + dataclass --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DcToken:
    id: str
    campaign_name: str
    email_campaign_id: str | None
    create_contact: bool
    created_at: datetime | None
    created_by: str | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DcToken:
        created = d.get("createdAt")
        return cls(
            d["id"],
            d.get("campaignName", ""),
            d.get("emailCampaignId"),
            d.get("createContact", False),
            datetime.fromisoformat(created) if created else None,
            d.get("createdBy"),
        )


def dc_page(body: bytes) -> list[DcToken]:
    return [DcToken.from_dict(t) for t in json.loads(body)["results"]]


def dc_one(body: bytes) -> DcToken:
    return DcToken.from_dict(json.loads(body))


# -- peers' decoders ---------------------------------------------------------------------------
class FakeResponse:
    """What hubspot-api-client's ``ApiClient.deserialize`` reads from a urllib3 response."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.status = 200


def api_client_decoders() -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]] | None:
    if importlib.util.find_spec("hubspot") is None:
        return None
    from hubspot.marketing.transactional import ApiClient

    client = ApiClient()
    page_type = "CollectionResponseSmtpApiTokenViewForwardPaging"
    return (
        lambda b: client.deserialize(FakeResponse(b), page_type),
        lambda b: client.deserialize(FakeResponse(b), "SmtpApiTokenView"),
    )


def hubspot_sdk_decoders(strict: bool) -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]]:
    from hubspot_sdk._models import construct_type, validate_type
    from hubspot_sdk.pagination import AsyncPage
    from hubspot_sdk.types.marketing import SmtpAPITokenView

    page_t = AsyncPage[SmtpAPITokenView]
    if strict:
        return (
            lambda b: validate_type(type_=page_t, value=json.loads(b)),
            lambda b: validate_type(type_=SmtpAPITokenView, value=json.loads(b)),
        )
    return (
        lambda b: construct_type(type_=page_t, value=json.loads(b)),
        lambda b: construct_type(type_=SmtpAPITokenView, value=json.loads(b)),
    )


def calibrated(fn: Callable[[bytes], Any], body: bytes, seconds: float) -> Callable[[], Any]:
    """A round that decodes ``body`` for about ``seconds`` (count fixed after one trial)."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 4:
        fn(body)
        n += 1
    count = max(10, n * 4)

    async def run() -> Sample:
        meter = Meter()
        for _ in range(count):
            fn(body)
        return meter.stop(count)

    return run


def check(page: Any, one: Any) -> None:
    results = page if isinstance(page, list) else page.results
    if len(results) != 100 or str(one.id) != "100000007":
        raise RuntimeError("decoder returned the wrong data")
    created = getattr(one, "created_at", None)
    if not isinstance(created, datetime):
        raise RuntimeError(f"created_at not parsed: {created!r}")


async def run(quick: bool) -> Json:
    rounds = 3 if quick else 5
    seconds = 0.15 if quick else 0.5
    decoders: dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]] = {
        "hubspot_tx msgspec decoder": (smtp_token_page_decoder.decode, smtp_token_decoder.decode),
    }
    if (hac := api_client_decoders()) is not None:
        decoders["hubspot-api-client ApiClient.deserialize"] = hac
    notes = []
    if importlib.util.find_spec("hubspot_sdk") is not None:
        decoders["hubspot-sdk construct_type (its default)"] = hubspot_sdk_decoders(False)
        decoders["hubspot-sdk validate_type (strict)"] = hubspot_sdk_decoders(True)
    else:
        notes.append("hubspot-sdk: unavailable.")
    decoders["pydantic v2 model_validate_json"] = (
        PydPage.model_validate_json,
        PydToken.model_validate_json,
    )
    decoders["json.loads + dataclass"] = (dc_page, dc_one)
    tables = []
    for what, body, k in (("100-token list page", PAGE, 0), ("one token", ONE, 1)):
        variants = []
        for name, fns in decoders.items():
            check(fns[0](PAGE), fns[1](ONE))
            variants.append(
                Variant(name, calibrated(fns[k], body, seconds), sdk=name.startswith("hubspot_tx"))
            )
        await alternate(variants, rounds, f"E {what}")
        tables.append(
            table(f"{what} ({len(body)} bytes)", variants, unit="µs/decode", metric="latency")
        )
    return {
        "id": "E",
        "title": "Decoding SMTP-token responses",
        "notes": [
            f"{rounds} rounds alternating, ~{seconds} s of back-to-back decodes per row per round.",
            *notes,
        ],
        "tables": tables,
    }


if __name__ == "__main__":
    cli(__doc__, run)
