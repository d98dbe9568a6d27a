"""A FastAPI backend that sends transactional email through HubSpot.

One HubSpot client and one SMTP pool are created at startup and closed at shutdown; request
handlers just ``await`` them. Configuration comes from the environment (see ``hubspot-tx
--help``); point it at the sandbox with the line ``hubspot-tx sandbox`` prints.

    pip install 'hubspot-tx' fastapi uvicorn
    uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from hubspot_tx import HubSpot, SmtpCredentials, SmtpPool


def _ssl() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file := os.environ.get("HUBSPOT_CA_FILE"):  # e.g. the sandbox's CA
        context.load_verify_locations(cafile=ca_file)
    return context


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with (
        HubSpot(ssl=_ssl()) as hubspot,  # $HUBSPOT_ACCESS_TOKEN, $HUBSPOT_BASE_URL
        SmtpPool(
            os.environ.get("HUBSPOT_SMTP_HOST"),
            int(os.environ.get("HUBSPOT_SMTP_PORT", "587")),
            credentials=SmtpCredentials(
                os.environ["HUBSPOT_SMTP_USER"], os.environ["HUBSPOT_SMTP_PASSWORD"]
            ),
            ssl_context=_ssl(),
        ) as smtp,
    ):
        app.state.hubspot, app.state.smtp = hubspot, smtp
        yield


app = FastAPI(lifespan=lifespan)


class Receipt(BaseModel):
    to: str
    order: str


@app.post("/receipts")
async def send_receipt(receipt: Receipt) -> dict[str, object]:
    """Relay a message built here through smtp.hubapi.com."""
    message = EmailMessage()
    message["From"] = "orders@shop.example.com"
    message["To"] = receipt.to
    message["Subject"] = f"Receipt for order {receipt.order}"
    message.set_content(f"Thank you for order {receipt.order}.")
    outcome = await app.state.smtp.send(message)
    if not outcome.ok:
        raise HTTPException(502, f"{outcome.category}: {outcome.reply}")
    return {"status": outcome.status, "accepted": outcome.accepted}


class Welcome(BaseModel):
    to: str
    first_name: str


@app.post("/welcome")
async def send_welcome(welcome: Welcome) -> dict[str, object]:
    """Single-send a HubSpot-built email; the user id makes retries safe across requests."""
    status = await app.state.hubspot.single_send.send(
        email_id=int(os.environ.get("WELCOME_EMAIL_ID", "1001")),
        to=welcome.to,
        send_id=f"welcome-{welcome.to}",
        custom_properties={"first_name": welcome.first_name},
    )
    return {"status_id": status.status_id, "status": status.status}
