"""Our models and paths checked against code the project did not write: HubSpot's own generated
SDKs, ``hubspot-api-client`` (OpenAPI Generator, the v3 paths) and ``hubspot-sdk`` (Stainless,
the 2026-03 paths). A test here cannot merely agree with our own reading of the specs.

Where the two disagree with HubSpot's newer spec collection (hubspot-api-client 12 predates
``EmailSendStatusView.message`` and lists 43 ``sendResult`` values, not 51), our models follow
the spec collection and the older SDK's values must still all decode as known.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from datetime import datetime
from typing import Any, get_args, get_origin

import aiohttp
import msgspec
import pytest
import typing_extensions

from hubspot_tx._paths import API_VERSIONS
from hubspot_tx._secret import Secret
from hubspot_tx.models import (
    EventId,
    SendResult,
    SendState,
    SendStatus,
    SingleSendMessage,
    SingleSendRequest,
    SmtpTokenCreateRequest,
    SmtpTokenPage,
    SmtpTokenWithPassword,
    StatisticsData,
    StatisticsHistogram,
    StatisticsInterval,
    TimeInterval,
)
from hubspot_tx.models.single_send import encode_request
from hubspot_tx.models.tracking import EmailStatistics
from hubspot_tx.sandbox import Sandbox
from hubspot_tx.sandbox._validate import DATED_MESSAGE_REQUIRED, DATED_REQUIRED

from .conftest import FAST_RETRY

hs_models = pytest.importorskip("hubspot.marketing.transactional.models")
hs_emails = pytest.importorskip("hubspot.marketing.emails.models")
sdk_marketing = pytest.importorskip("hubspot_sdk.types.marketing")
sdk_transactional = pytest.importorskip("hubspot_sdk.types.marketing.transactional")

# Our struct name -> the name HubSpot's generator gives the same schema.
_NAMES = {
    "EventId": "EventIdView",
    "SingleSendMessage": "PublicSingleSendEmail",
    "StatisticsData": "EmailStatisticsData",
    "StatisticsInterval": "EmailStatisticInterval",
    "TimeInterval": "Interval",
    "SmtpToken": "SmtpApiTokenView",
    "SmtpTokenWithPassword": "SmtpApiTokenView",
    "Paging": "ForwardPaging",
    "NextPage": "NextPage",
}


def _generator_type(t: Any) -> str:
    """Our annotation in OpenAPI Generator's spelling (``dict[str, int]``, ``list[str]``)."""
    args = [a for a in get_args(t) if a is not type(None)]
    origin = get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return _generator_type(args[0])
    if origin is list:
        return f"list[{_generator_type(args[0])}]"
    if origin is dict:
        return f"dict[str, {_generator_type(args[1])}]"
    if t is Any:
        return "object"
    if t is Secret or (isinstance(t, type) and issubclass(t, str)):  # OpenEnum too
        return "str"
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        return _NAMES.get(t.__name__, t.__name__)
    return {int: "int", float: "float", bool: "bool", datetime: "datetime"}[t]


def _ours(struct: type[msgspec.Struct]) -> dict[str, str]:
    hints = typing.get_type_hints(struct)
    return {f.encode_name: _generator_type(hints[f.name]) for f in msgspec.structs.fields(struct)}


def _theirs(model: Any) -> dict[str, str]:
    return {model.attribute_map[k]: v for k, v in model.openapi_types.items()}


def _required_by_generator(model: Any) -> set[str]:
    source = inspect.getsource(model)
    names = re.findall(r"Invalid value for `(\w+)`, must not be `None`", source)
    return {model.attribute_map[n] for n in names}


V3_PAIRS: list[tuple[type[msgspec.Struct], type]] = [
    (SingleSendRequest, hs_models.PublicSingleSendRequestEgg),
    (SingleSendMessage, hs_models.PublicSingleSendEmail),
    (SendStatus, hs_models.EmailSendStatusView),
    (EventId, hs_models.EventIdView),
    (SmtpTokenWithPassword, hs_models.SmtpApiTokenView),
    (SmtpTokenCreateRequest, hs_models.SmtpApiTokenRequestEgg),
    (SmtpTokenPage, hs_models.CollectionResponseSmtpApiTokenViewForwardPaging),
    (StatisticsData, hs_emails.EmailStatisticsData),
    (EmailStatistics, hs_emails.AggregateEmailStatistics),
    (StatisticsHistogram, hs_emails.CollectionResponseWithTotalEmailStatisticIntervalNoPaging),
    (StatisticsInterval, hs_emails.EmailStatisticInterval),
    (TimeInterval, hs_emails.Interval),
]
# Fields we have that hubspot-api-client 12 lacks, and why.
_NEWER_THAN_HUBSPOT_API_CLIENT = {("SendStatus", "message")}  # in the spec collection's v3


@pytest.mark.parametrize(("ours", "theirs"), V3_PAIRS, ids=lambda p: p.__name__)
def test_v3_fields_and_types_match_hubspot_api_client(
    ours: type[msgspec.Struct], theirs: type
) -> None:
    mine, generated = _ours(ours), _theirs(theirs)
    assert {k: mine.get(k) for k in generated} == generated
    extra = {k for k in mine if k not in generated}
    assert {(ours.__name__, k) for k in extra} <= _NEWER_THAN_HUBSPOT_API_CLIENT


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (SingleSendRequest, hs_models.PublicSingleSendRequestEgg),
        (SingleSendMessage, hs_models.PublicSingleSendEmail),
        (SmtpTokenCreateRequest, hs_models.SmtpApiTokenRequestEgg),
    ],
    ids=lambda p: p.__name__,
)
def test_v3_required_request_fields_match_hubspot_api_client(
    ours: type[msgspec.Struct], theirs: type
) -> None:
    required = {f.encode_name for f in msgspec.structs.fields(ours) if f.required}
    assert required == _required_by_generator(theirs)


def test_every_send_result_hubspot_api_client_knows_is_known() -> None:
    source = inspect.getsource(hs_models.EmailSendStatusView)
    block = source[source.index("allowed_values = [") :]
    values = re.findall(r'"([A-Z_]+)"', block[: block.index("]")])
    assert len(values) > 40
    assert all(SendResult(v).is_known for v in values)
    assert "INVALID_EMAIL" not in values


# -- hubspot-sdk: the 2026-03 schemas ------------------------------------------------------------
def _literal_values(annotation: Any) -> set[str]:
    for arg in [annotation, *get_args(annotation)]:
        if get_origin(arg) is typing.Literal:
            return set(get_args(arg))
    raise AssertionError(f"no Literal in {annotation}")


def test_2026_03_send_status_matches_hubspot_sdk() -> None:
    view = sdk_marketing.EmailSendStatusView
    fields = {f.alias or name: f for name, f in view.model_fields.items()}
    assert set(fields) == {f.encode_name for f in msgspec.structs.fields(SendStatus)}
    sdk_results = _literal_values(fields["sendResult"].annotation)
    assert sdk_results <= set(SendResult.__members__)
    # In the spec collection's 2026-03 EmailSendStatusView, not yet in hubspot-sdk 0.1.0a9.
    assert set(SendResult.__members__) - sdk_results <= {"MARKETING_ACTIVATION_DISALLOWED"}
    assert _literal_values(fields["status"].annotation) == set(SendState.__members__)
    required = {k for k, f in fields.items() if f.is_required()}
    assert required == {"status", "statusId"}


def _origin(hint: Any) -> Any:
    return get_origin(hint)


def _typed_dict_wire(td: Any) -> tuple[set[str], set[str]]:
    """(every key, required keys) of a Stainless params TypedDict, by wire name."""
    hints = typing_extensions.get_type_hints(td, include_extras=True)
    wire = {}
    for name, hint in hints.items():
        inner = get_args(hint)[0] if _origin(hint) is typing_extensions.Required else hint
        alias = next(
            (m.alias for m in getattr(inner, "__metadata__", ()) if getattr(m, "alias", None)),
            name,
        )
        wire[name] = alias
    required = {wire[k] for k, h in hints.items() if _origin(h) is typing_extensions.Required}
    return set(wire.values()), required


def test_2026_03_single_send_body_matches_hubspot_sdk() -> None:
    keys, required = _typed_dict_wire(sdk_transactional.SingleEmailSendParams)
    assert required == set(DATED_REQUIRED)
    assert keys == {f.encode_name for f in msgspec.structs.fields(SingleSendRequest)}
    msg_keys, msg_required = _typed_dict_wire(sdk_marketing.PublicSingleSendEmailParam)
    assert msg_required == set(DATED_MESSAGE_REQUIRED)
    assert msg_keys == {f.encode_name for f in msgspec.structs.fields(SingleSendMessage)}
    request = SingleSendRequest(email_id=1, message=SingleSendMessage(to="a@example.org"))
    body = json.loads(encode_request(request, dated=True))
    assert set(body) >= required
    assert set(body["message"]) >= msg_required


def test_2026_03_statistics_match_hubspot_sdk() -> None:
    data = sdk_marketing.EmailStatisticsData.model_fields
    hints = typing.get_type_hints(StatisticsData)
    for name, field in data.items():
        wire = field.alias or name
        ours = next(f for f in msgspec.structs.fields(StatisticsData) if f.encode_name == wire)
        assert _generator_type(hints[ours.name]) == _generator_type(field.annotation), wire


# -- paths ---------------------------------------------------------------------------------------
def _paths_in(module: Any) -> set[str]:
    return set(re.findall(r'"(/(?:marketing|oauth)/[^"]+)"', inspect.getsource(module)))


def test_v3_paths_match_hubspot_api_client() -> None:
    from hubspot.marketing.emails.api import statistics_api
    from hubspot.marketing.transactional.api import public_smtp_tokens_api, single_send_api
    from hubspot.oauth.api import tokens_api

    v3 = API_VERSIONS["v3"]
    theirs = set().union(
        *map(_paths_in, (single_send_api, public_smtp_tokens_api, statistics_api, tokens_api))
    )
    ours = {
        v3.single_send,
        v3.smtp_tokens,
        v3.smtp_tokens + "/{tokenId}",
        v3.smtp_tokens + "/{tokenId}/password-reset",
        v3.email_statistics + "/list",
        v3.email_statistics + "/histogram",
    }
    # hubspot-api-client refreshes at /oauth/v1/token, which HubSpot stops serving on
    # 2027-02-16; the spec collection's successor is /oauth/v3/token (README, "Where HubSpot's
    # docs and its spec disagree").
    assert "/oauth/v1/token" in theirs
    assert v3.oauth_token == "/oauth/v3/token"
    assert ours == theirs - {"/oauth/v1/token"}


def test_2026_03_paths_match_hubspot_sdk() -> None:
    from hubspot_sdk.resources.auth import oauth
    from hubspot_sdk.resources.marketing import emails, single_send
    from hubspot_sdk.resources.marketing.transactional import single_email, smtp_tokens

    dated = API_VERSIONS["2026-03"]
    found = set().union(*map(_paths_in, (oauth, single_send, single_email, smtp_tokens, emails)))
    for path in (
        dated.single_send,
        dated.marketing_single_send,
        dated.smtp_tokens,
        dated.smtp_tokens + "/{token_id}",
        dated.smtp_tokens + "/{token_id}/password-reset",
        dated.email_statistics + "/list",
        dated.email_statistics + "/histogram",
        dated.oauth_token,
    ):
        assert path in found, path


# -- the sandbox's answers, validated by HubSpot's SDK ------------------------------------
async def test_the_sandboxs_answers_validate_as_hubspot_sdk_models() -> None:
    async with (
        Sandbox(pending_seconds=0.0, processing_seconds=0.0) as sb,
        sb.client(retry=FAST_RETRY) as hs,
    ):
        statuses = [
            await hs.single_send.send(email_id=1001, to=to)
            for to in ("a@example.org", "bounced@example.org", "sendresult-queued@example.org")
        ]
        token = await hs.smtp_tokens.create(campaign_name="oracle")
        headers = {"Authorization": f"Bearer {sb.access_token}"}
        v3 = API_VERSIONS["2026-03"]
        async with aiohttp.ClientSession(sb.base_url, headers=headers) as http:
            for status in statuses:
                await hs.send_status.wait(status, timeout=5)
                async with http.get(f"{v3.send_statuses}/{status.status_id}") as r:
                    sdk_marketing.EmailSendStatusView.model_validate(await r.json())
            async with http.get(v3.smtp_tokens) as r:
                page = await r.json()
            async with http.get(v3.email_statistics + "/list") as r:
                stats = await r.json()
    for item in page["results"]:
        sdk_marketing.SmtpAPITokenView.model_validate(item)
    assert page["results"][0]["id"] == token.id
    sdk_marketing.AggregateEmailStatistics.model_validate(stats)
