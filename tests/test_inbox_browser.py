"""The web inbox in a real browser: Debian's headless Chromium, driven by Playwright.

The sandbox and the browser share the test's event loop. Without Chromium these tests fail
(CI installs it); ``HUBSPOT_TX_SKIP_BROWSER=1`` skips them. ``HUBSPOT_TX_SCREENSHOTS=<dir>``
writes the screenshots there (``make screenshots`` refreshes ``docs/screenshots``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from hubspot_tx.sandbox import Sandbox

from .conftest import make_message

if os.environ.get("HUBSPOT_TX_SKIP_BROWSER") == "1":
    pytest.skip("HUBSPOT_TX_SKIP_BROWSER=1", allow_module_level=True)

CHROMIUM = os.environ.get("HUBSPOT_TX_CHROMIUM", "/usr/bin/chromium")
# No network here: without these, Chromium keeps dialling Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # every Playwright wait and assertion


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install chromium "
            "(or set HUBSPOT_TX_SKIP_BROWSER=1 to skip the browser tests)"
        )
    return CHROMIUM


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("HUBSPOT_TX_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True, timeout=TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(rate_limit=None) as sandbox:
        yield sandbox


@pytest.fixture
async def page(browser: Browser, sb: Sandbox) -> AsyncIterator[Page]:
    """A page on the sandbox's origin; fails the test if the inbox throws."""
    context = await browser.new_context(
        base_url=sb.base_url, viewport={"width": 1280, "height": 760}
    )
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    try:
        tab = await context.new_page()
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
    finally:
        await context.close()
    assert errors == [], errors


async def relay(sb: Sandbox, messages: Iterable[bytes | EmailMessage]) -> None:
    async with sb.client() as hs:
        token = await hs.smtp_tokens.create(campaign_name="inbox")
    async with sb.smtp_pool(token) as pool:
        async for outcome in pool.send_many(messages):
            assert outcome.ok, outcome


def html_message(i: int) -> EmailMessage:
    """A text + HTML message whose HTML tries to run scripts, with one attachment."""
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = f"ada{i}@example.org"
    message["Subject"] = f"Your receipt {i}"
    message["Message-ID"] = f"<html{i}@hubspot-tx.test>"
    message.set_content(f"Thanks for your order #{i}.\n")
    message.add_alternative(
        "<html><head><title>receipt</title></head><body>"
        f"<p>Thanks for your order <b id='bold'>#{i}</b>.</p>"
        "<script>document.title = 'script ran'; document.body.dataset.ran = 'yes';"
        "parent.postMessage('script ran', '*'); alert('script ran');</script>"
        "<img src=x onerror=\"parent.postMessage('onerror ran', '*')\">"
        "</body></html>",
        subtype="html",
    )
    message.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf",
                           filename=f"receipt-{i}.pdf")  # fmt: skip
    return message


async def test_a_relay_of_50_lists_50_newest_first_and_search_filters(
    sb: Sandbox, page: Page
) -> None:
    await relay(sb, (make_message(i) for i in range(50)))
    await page.goto("/")
    await expect(page.locator("#message-count")).to_have_text("50")
    rows = page.locator("#messages tbody tr[data-id]")
    await expect(rows).to_have_count(50)
    # Newest first in the order the server stored them (a relay over several sessions
    # completes in its own order, not the input's).
    stored = sb.state.messages
    await expect(rows.first).to_contain_text(str(stored[-1].message_id))
    await expect(rows.last).to_contain_text(str(stored[0].message_id))
    await expect(rows.first.locator(".status")).to_have_text("DELIVERED")

    await page.get_by_label("Search").fill("message 4")  # 4 and 40..49
    await expect(page.locator("#message-count")).to_have_text("11")
    await expect(rows).to_have_count(11)


async def test_the_count_rises_live_without_a_reload(sb: Sandbox, page: Page) -> None:
    await page.goto("/")
    await expect(page.locator("#message-count")).to_have_text("0")
    await page.evaluate("window.__sameDocument = true")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    seen: list[str] = []
    for batch in range(3):
        await relay(sb, (make_message(batch * 10 + i) for i in range(10)))
        await expect(page.locator("#message-count")).to_have_text(str(10 * (batch + 1)))
        seen.append(await page.locator("#message-count").inner_text())
        await asyncio.sleep(0.2)  # a pause, as between a relay's bursts

    assert seen == ["10", "20", "30"]
    await expect(page.locator("#messages tbody tr[data-id]")).to_have_count(30)
    assert await page.evaluate("window.__sameDocument") is True  # never reloaded
    assert navigations == []

    sb.state.delete_messages()  # a deletion shows too, without waiting for the long-poll's end
    await expect(page.locator("#message-count")).to_have_text("0", timeout=5000)


async def test_the_dom_stays_bounded_and_the_count_exact(sb: Sandbox, page: Page) -> None:
    await page.goto("/")
    await expect(page.locator("#message-count")).to_have_text("0")
    await relay(sb, (make_message(i, size=0) for i in range(620)))
    await expect(page.locator("#message-count")).to_have_text("620")
    await expect(page.locator("#messages tbody tr[data-id]")).to_have_count(500)
    await expect(page.locator("#rows-note")).to_contain_text("newest 500")


async def test_a_message_opens_with_subject_body_headers_and_raw(sb: Sandbox, page: Page) -> None:
    await relay(sb, [make_message(7, to="grace@example.org")])
    await page.goto("/")
    await page.get_by_role("link", name="message 7").click()
    await expect(page).to_have_url(f"{sb.base_url}/#/messages/1")
    await expect(page.locator("#subject")).to_have_text("message 7")
    await expect(page.locator("#text")).to_contain_text("Body of message 7.")
    await expect(page.locator("#raw")).to_contain_text("Message-ID: <m7@hubspot-tx.test>")
    await expect(page.get_by_role("row", name="To grace@example.org")).to_be_visible()
    await expect(page.locator("iframe")).to_have_count(0)  # no HTML part, no frame


async def test_html_renders_bold_but_its_scripts_never_run(sb: Sandbox, page: Page) -> None:
    await relay(sb, [html_message(3)])
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:  # an open alert would block the page
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await page.add_init_script(
        "window.__posted = []; addEventListener('message', (e) => __posted.push(e.data));"
    )
    await page.goto("/#/messages/1")
    await expect(page.locator("#subject")).to_have_text("Your receipt 3")

    iframe = page.locator("iframe.html-part")
    assert await iframe.get_attribute("sandbox") == ""  # neither allow-scripts nor same-origin
    assert await iframe.get_attribute("src") == "/_sandbox/v1/messages/1/html"
    frame = await (await iframe.element_handle()).content_frame()
    assert frame is not None
    await frame.wait_for_load_state()
    bold = frame.locator("#bold")
    await expect(bold).to_have_text("#3")
    weight = await bold.evaluate("(b) => getComputedStyle(b).fontWeight")
    assert int(weight) >= 700

    await asyncio.sleep(0.3)  # time for a script that could run to have run
    assert await frame.evaluate("document.title") == "receipt"
    assert await frame.evaluate("document.body.dataset.ran") is None
    assert await page.evaluate("window.__posted") == []
    assert dialogs == []
    assert await page.title() == "hubspot-tx sandbox inbox"

    await expect(page.locator("#text")).to_contain_text("Thanks for your order #3.")
    await expect(page.locator("#attachments")).to_contain_text("receipt-3.pdf")
    await expect(page.locator("#attachments")).to_contain_text("application/pdf")


async def test_an_attachment_downloads_with_its_bytes(sb: Sandbox, page: Page) -> None:
    await relay(sb, [html_message(4)])
    await page.goto("/#/messages/1")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="receipt-4.pdf").click()
    download = await info.value
    assert download.suggested_filename == "receipt-4.pdf"
    path = await download.path()
    assert await asyncio.to_thread(Path(path).read_bytes) == b"%PDF-1.4 receipt"


async def test_delete_one_message_then_all(sb: Sandbox, page: Page) -> None:
    await relay(sb, (make_message(i) for i in range(3)))
    questions: list[str] = []

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.goto("/#/messages/2")
    await expect(page.locator("#subject")).to_have_text("message 1")
    await page.get_by_role("button", name="Delete").click()
    await expect(page).to_have_url(f"{sb.base_url}/#/")
    await expect(page.locator("#message-count")).to_have_text("2")
    assert [m.seq for m in sb.outbox()] == [1, 3]

    await page.get_by_role("button", name="Delete all").click()
    await expect(page.locator("#message-count")).to_have_text("0")
    assert sb.outbox() == []
    assert questions == ["Delete this message?", "Delete every message in the sandbox?"]


async def test_a_dismissed_delete_deletes_nothing(sb: Sandbox, page: Page) -> None:
    await relay(sb, [make_message(1)])

    async def dismiss(dialog: Dialog) -> None:
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await page.goto("/")
    await expect(page.locator("#message-count")).to_have_text("1")
    await page.get_by_role("button", name="Delete all").click()
    await asyncio.sleep(0.3)  # time for a DELETE that should not be sent
    assert len(sb.outbox()) == 1


async def test_the_api_link_shows_a_readable_reference(sb: Sandbox, page: Page) -> None:
    await page.goto("/")
    await page.get_by_role("link", name="API", exact=True).click()
    await expect(page).to_have_url(f"{sb.base_url}/#/api")
    await expect(page.locator("nav a[aria-current='page']")).to_have_text("API")
    api = page.locator("#api")
    await expect(api).to_contain_text("List messages accepted over SMTP")
    await expect(api).to_contain_text("One attachment, as a download")
    await expect(api.get_by_role("link", name="/_sandbox/v1/messages", exact=True)).to_be_visible()
    assert (
        await page.get_by_role("link", name="its OpenAPI document (JSON)").get_attribute("href")
        == "/_sandbox/openapi.json"
    )


async def test_single_sends_show_their_timeline(sb: Sandbox, page: Page) -> None:
    async with sb.client() as hs:
        await hs.single_send.send(email_id=12345678, to="ada@example.org")
    await page.goto("/#/single-sends")
    row = page.locator("tr[data-status-id]")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("ada@example.org")
    steps = row.locator("ol.timeline li .status")
    await expect(steps).to_have_text(["PENDING", "PROCESSING", "COMPLETE"])
    await expect(row).to_contain_text("SENT")
    await expect(page.locator("nav a[aria-current='page']")).to_have_text("Single-sends")


async def test_campaigns_list_event_counts_and_a_campaigns_events(sb: Sandbox, page: Page) -> None:
    await relay(sb, [make_message(1), make_message(2, to="bounce@example.org")])
    campaign = sb.state.messages[0].email_campaign_id
    assert campaign is not None
    await page.goto("/#/campaigns")
    row = page.get_by_role("row", name=campaign)
    await expect(row).to_contain_text("inbox")  # the token's campaign name
    await page.get_by_role("link", name=campaign).click()
    await expect(page.locator("h2")).to_have_text(f"Campaign {campaign}")
    await expect(page.locator("tbody")).to_contain_text("BOUNCE")
    await expect(page.locator("tbody")).to_contain_text("DELIVERED")


async def test_the_inbox_works_over_https(browser: Browser, sb: Sandbox) -> None:
    await relay(sb, [make_message(1)])
    # The sandbox's CA is a throwaway one the browser does not know.
    context = await browser.new_context(ignore_https_errors=True)
    try:
        tab = await context.new_page()
        await tab.goto(sb.https_url + "/", timeout=TIMEOUT_MS)
        await expect(tab.locator("#message-count")).to_have_text("1", timeout=TIMEOUT_MS)
    finally:
        await context.close()


async def test_screenshots(sb: Sandbox, page: Page, screenshots: Path) -> None:
    out = screenshots
    people = ["ada", "grace", "bounce.kim", "open.linus", "click.margaret", "x@blocked.example"]
    await relay(
        sb,
        [
            *(make_message(i, to=f"{people[i % 5]}@example.org") for i in range(1, 12)),
            make_message(12, to=people[5]),
            html_message(13),
        ],
    )
    async with sb.client() as hs:
        await hs.single_send.send(email_id=12345678, to="ada@example.org")
    await page.goto("/")
    await expect(page.locator("#message-count")).to_have_text("14")  # 13 relayed, 1 single-send
    await asyncio.sleep(1.5)  # let the statuses settle
    await expect(page.locator("#messages tbody tr").first.locator(".status")).to_have_text(
        "DELIVERED"
    )
    await page.screenshot(path=out / "inbox.png")
    await page.get_by_role("link", name="Your receipt 13").click()
    await expect(page.locator("#raw")).to_contain_text("Your receipt 13")
    await expect(page.locator("iframe.html-part")).to_be_visible()
    await page.screenshot(path=out / "message.png", full_page=True)
    for name in ("inbox.png", "message.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
