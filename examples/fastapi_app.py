"""A FastAPI backend that sends transactional email through HubSpot.

One HubSpot client and one SMTP pool are created at startup and closed at shutdown; request
handlers just ``await`` them. ``HubSpot()`` and ``SmtpPool()`` read their configuration from the
environment (``hubspot-tx --help`` lists the variables), so the ``export`` line that
``hubspot-tx sandbox`` prints is all it takes to run it against the sandbox:

    pip install 'hubspot-tx[sandbox]' fastapi uvicorn
    hubspot-tx sandbox                      # in one shell; copy its export line
    export HUBSPOT_BASE_URL=... HUBSPOT_SMTP_PASSWORD=...   # in another
    uvicorn examples.fastapi_app:app
    curl -X POST localhost:8000/receipts -H 'content-type: application/json' \\
         -d '{"to": "ada@example.org", "order": "A-1"}'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from hubspot_tx import HubSpot, SmtpPool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # HubSpot(): $HUBSPOT_ACCESS_TOKEN, $HUBSPOT_BASE_URL, $HUBSPOT_CA_FILE.
    # SmtpPool(): $HUBSPOT_SMTP_USER, $HUBSPOT_SMTP_PASSWORD, $HUBSPOT_SMTP_HOST,
    # $HUBSPOT_SMTP_PORT, $HUBSPOT_CA_FILE (default smtp.hubapi.com:587, STARTTLS).
    async with HubSpot() as hubspot, SmtpPool() as smtp:
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
