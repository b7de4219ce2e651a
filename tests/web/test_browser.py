"""End to end in headless Chromium: the widget and the console against the real stack.

Real Redis, real Rasa with the trained model, the real action server and gateway (the ``stack``
fixture). Screenshots of the widget and the console are kept in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from bot.web.auth import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD
from tests.web.conftest import screenshot_path

pytestmark = [pytest.mark.model, pytest.mark.browser]
TIMEOUT = 30_000
DANA = "Hi, I'm Dana from Pennant Pay. How can I help?"
CHARGED_TWICE = "My card was charged twice at the same shop"
XSS = '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script>'


PAGE_ERRORS: list[str] = []


def watch_errors(page) -> None:
    """Script errors on any page fail the test (see the autouse fixture below)."""
    page.on("pageerror", lambda error: PAGE_ERRORS.append(f"{page.url}: {error}"))


@pytest.fixture(autouse=True)
def no_script_errors():
    PAGE_ERRORS.clear()
    yield
    assert PAGE_ERRORS == []


async def open_widget(browser, stack, *, viewport=None):
    context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
    page = await context.new_page()
    watch_errors(page)
    page.set_default_timeout(TIMEOUT)
    await page.goto(f"{stack.url}/")
    await page.get_by_role("button", name="Chat with us").click()
    await page.get_by_role("dialog", name="Pennant Pay support").wait_for()
    return page


async def say(page, text: str) -> None:
    await page.get_by_label("Your message").fill(text)
    await page.get_by_label("Your message").press("Enter")


def log(page):
    return page.get_by_role("log", name="Conversation")


async def bot_replies(page) -> int:
    return await page.locator(".pc-log .pc-from-bot").count()


async def wait_bot_reply(page, before: int) -> str:
    replies = page.locator(".pc-log .pc-from-bot")
    await replies.nth(before).wait_for()
    return await replies.nth(before).inner_text()


async def open_console(browser, stack):
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    watch_errors(page)
    page.set_default_timeout(TIMEOUT)
    await page.goto(f"{stack.url}/agent")
    await page.get_by_label("Email").fill(DEMO_AGENT_EMAIL)
    await page.get_by_label("Password").fill(DEMO_AGENT_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.locator("#presence").wait_for()
    return page


async def go_online_and_claim(console, ticket_id: str) -> None:
    presence = console.locator("#presence")
    if await presence.get_attribute("aria-checked") != "true":
        await presence.click()
        await console.locator("#presence[aria-checked='true']").wait_for()
    await console.locator(f"tr[data-ticket-id='{ticket_id}'] button.claim").click()
    await console.locator("#chat").wait_for()


async def hand_off(customer) -> str:
    """Ask for a person; returns the ticket id once the widget shows the queue position."""
    await customer.locator(".pc-human").click()
    await customer.locator(".pc-queue").wait_for()
    queue_status = customer.get_by_role("status").filter(
        has_text=re.compile(r"number \d+ in the queue")
    )
    await queue_status.wait_for()
    return await customer.evaluate("PennantChat.ticketId()")


async def test_customer_is_handed_to_an_agent_and_back_to_the_bot(browser, stack):
    customer = await open_widget(browser, stack)
    before = await bot_replies(customer)
    await say(customer, "How do I activate my new card?")
    answer = await wait_bot_reply(customer, before)
    assert "card" in answer.lower()
    await customer.screenshot(path=screenshot_path("widget-bot-answer"))

    ticket_id = await hand_off(customer)
    await customer.screenshot(path=screenshot_path("widget-waiting-in-queue"))

    console = await open_console(browser, stack)
    await go_online_and_claim(console, ticket_id)
    transcript = console.get_by_role("log", name="Transcript")
    await transcript.get_by_text("How do I activate my new card?", exact=True).wait_for()
    await console.get_by_text("Bot context").wait_for()

    await customer.get_by_text(re.compile(r"joined the conversation")).wait_for()
    await console.get_by_label("Your reply").fill(DANA)
    await console.get_by_label("Your reply").press("Enter")
    await log(customer).get_by_text(DANA, exact=True).wait_for()

    await say(customer, CHARGED_TWICE)
    await transcript.get_by_text(CHARGED_TWICE, exact=True).wait_for()
    await console.screenshot(path=screenshot_path("console-chat"))
    await customer.screenshot(path=screenshot_path("widget-with-agent"))

    await customer.reload()  # a reload mid-chat loses nothing
    await log(customer).get_by_text(DANA, exact=True).wait_for()
    await log(customer).get_by_text(CHARGED_TWICE, exact=True).wait_for()
    await log(customer).get_by_text("How do I activate my new card?", exact=True).wait_for()

    replies_before_handback = await bot_replies(customer)
    await console.get_by_role("button", name="Hand back to bot").click()
    await customer.get_by_text(re.compile(r"left the conversation")).wait_for()
    await wait_bot_reply(customer, replies_before_handback)  # the bot greets the customer back
    await customer.locator(".pc-root[data-mode='bot']").wait_for()

    before = await bot_replies(customer)
    await say(customer, "How long does a transfer to another bank take?")
    answer = await wait_bot_reply(customer, before)
    assert answer.strip()
    await customer.screenshot(path=screenshot_path("widget-back-with-bot"))


async def test_injected_markup_renders_as_text_in_widget_and_console(browser, stack):
    customer = await open_widget(browser, stack)
    ticket_id = await hand_off(customer)
    console = await open_console(browser, stack)
    await go_online_and_claim(console, ticket_id)
    await customer.get_by_text(re.compile(r"joined the conversation")).wait_for()

    await say(customer, XSS)
    await console.get_by_role("log", name="Transcript").get_by_text(XSS, exact=True).wait_for()
    await console.get_by_label("Your reply").fill("Agent says " + XSS)
    await console.get_by_label("Your reply").press("Enter")
    await log(customer).get_by_text("Agent says " + XSS, exact=True).wait_for()

    for page in (customer, console):
        assert await page.evaluate("window.__xss") is None
        assert (
            await page.locator(
                ".pc-log img, #transcript img, .pc-log script, #transcript script"
            ).count()
            == 0
        )
    await console.screenshot(path=screenshot_path("console-injection-as-text"))
    await customer.screenshot(path=screenshot_path("widget-injection-as-text"))
    await console.get_by_label("Disposition").select_option("solved")
    await console.get_by_role("button", name="Resolve").click()
    await customer.get_by_text(re.compile(r"left the conversation")).wait_for()


async def test_widget_works_on_a_phone_sized_screen_and_by_keyboard(browser, stack):
    customer = await open_widget(browser, stack, viewport={"width": 375, "height": 740})
    box = await customer.get_by_role("dialog", name="Pennant Pay support").bounding_box()
    assert box["width"] <= 375 and box["height"] <= 740
    await customer.get_by_label("Your message").focus()
    await customer.keyboard.type("What is the fee for a transfer?")
    before = await bot_replies(customer)
    await customer.keyboard.press("Enter")
    await wait_bot_reply(customer, before)
    await customer.keyboard.press("Escape")
    assert await customer.get_by_role("dialog").count() == 0
    assert (
        await customer.get_by_role("button", name="Chat with us").get_attribute("aria-expanded")
        == "false"
    )
    await customer.get_by_role("button", name="Chat with us").click()
    await customer.screenshot(path=screenshot_path("widget-phone"))


async def test_the_api_docs_page_lists_the_endpoints(browser, stack):
    page = await browser.new_page()
    watch_errors(page)
    await page.goto(f"{stack.url}/api/docs")
    await page.get_by_text("/api/conversations/{conversation_id}/messages").first.wait_for()
    assert await page.locator("section.op").count() >= 15
