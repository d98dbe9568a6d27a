"""``hubspot-tx tokens|send|status``."""

from __future__ import annotations

import argparse
import sys

from .. import _env
from .._client import HubSpot
from ..models import SendResult, SendStatus
from ._output import emit

__all__ = ["client_from", "run_rest"]

TOKEN_COLUMNS = ["id", "campaignName", "emailCampaignId", "createContact", "createdAt"]
STATUS_COLUMNS = ["statusId", "status", "sendResult", "requestedAt", "completedAt"]


def client_from(args: argparse.Namespace) -> HubSpot:
    """A client configured from flags and the environment."""
    if not (args.access_token or _env.get(_env.ACCESS_TOKEN)):
        raise ValueError(f"no access token: pass --access-token or set {_env.ACCESS_TOKEN}")
    # The variables are read by HubSpot() as a program's would be (--ca-file was put in
    # $HUBSPOT_CA_FILE by main()), so $HUBSPOT_ACCESS_TOKEN never goes to another --base-url.
    return HubSpot(args.access_token, base_url=args.base_url, api_version=args.api_version)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {value!r}")
        pairs[key] = val
    return pairs


async def run_rest(args: argparse.Namespace) -> int:
    async with client_from(args) as hs:
        if args.command == "tokens":
            return await _tokens(hs, args)
        if args.command == "send":
            return await _send(hs, args)
        return await _status(hs, args)


async def _tokens(hs: HubSpot, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        tokens = [
            t
            async for t in hs.smtp_tokens.list(
                campaign_name=args.campaign_name, email_campaign_id=args.email_campaign_id
            )
        ]
        emit(tokens, as_json=args.json, columns=TOKEN_COLUMNS)
    elif action == "get":
        emit(await hs.smtp_tokens.get(args.token_id), as_json=args.json, columns=TOKEN_COLUMNS)
    elif action == "delete":
        await hs.smtp_tokens.delete(args.token_id)
        emit({"id": args.token_id, "deleted": True}, as_json=args.json)
    else:
        if action == "create":
            token = await hs.smtp_tokens.create(
                campaign_name=args.campaign_name, create_contact=args.create_contact
            )
        else:
            token = await hs.smtp_tokens.reset_password(args.token_id)
        # The one place a password is shown: the user asked for it, and it is shown once.
        shown = {
            "id": token.id,
            "campaignName": token.campaign_name,
            "emailCampaignId": token.email_campaign_id,
            "password": token.password.get_secret_value(),
            "expiresAt": token.expires_at.isoformat() if token.expires_at else None,
        }
        emit(shown, as_json=args.json)
    return 0


async def _send(hs: HubSpot, args: argparse.Namespace) -> int:
    kwargs = {
        "email_id": args.email_id,
        "to": args.to,
        "from_": args.from_,
        "cc": args.cc,
        "bcc": args.bcc,
        "reply_to": args.reply_to,
        "send_id": args.send_id,
        "custom_properties": _pairs(args.property, "--property") or None,
        "contact_properties": _pairs(args.contact_property, "--contact-property") or None,
    }
    send = hs.single_send.send_v4 if args.v4 else hs.single_send.send
    status = await send(**kwargs)
    if args.wait:
        status = await hs.send_status.wait(status, timeout=args.timeout)
    emit(status, as_json=args.json, columns=STATUS_COLUMNS)
    if status.send_result is SendResult.IDEMPOTENT_IGNORE:
        # A repeated --send-id: HubSpot sent nothing now because the first send went out.
        print(
            f"send id {args.send_id or status.status_id} was used before: that send already "
            "happened, nothing was sent again",
            file=sys.stderr,
        )
        return 0
    return _status_code(status, waited=args.wait)


async def _status(hs: HubSpot, args: argparse.Namespace) -> int:
    if args.wait:
        status = await hs.send_status.wait(args.status_id, timeout=args.timeout)
    else:
        status = await hs.send_status.get(args.status_id)
    emit(status, as_json=args.json, columns=STATUS_COLUMNS)
    return _status_code(status, waited=args.wait)


def _status_code(status: SendStatus, *, waited: bool) -> int:
    """1 when a final status says the email did not go out (``IDEMPOTENT_IGNORE``: it went out
    the first time that send id was used)."""
    if status.send_result is SendResult.IDEMPOTENT_IGNORE:
        return 0
    if waited and status.send_result is not None and not status.send_result.is_sent:
        return 1
    return 0
