"""A real Chromium opens the shop, talks to the assistant in the widget, and clicks a quick reply."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


def test_shopper_chats_in_the_widget(stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(stack.gateway_url + "/")
    page.get_by_test_id("sa-bubble").click()
    panel = page.get_by_test_id("sa-panel")
    panel.wait_for(state="visible")
    page.get_by_test_id("sa-input").fill("hello")
    page.get_by_test_id("sa-input").press("Enter")
    page.locator(".sa-msg-user", has_text="hello").wait_for()
    page.locator(".sa-msg-bot", has_text="shopping assistant").wait_for(timeout=30000)

    bot_count = page.locator(".sa-msg-bot").count()
    page.locator(".sa-quick-reply", has_text="Shipping options").first.click()
    page.locator(".sa-msg-bot", has_text="Standard").wait_for(timeout=30000)
    assert page.locator(".sa-msg-bot").count() > bot_count

    page.get_by_test_id("sa-input").fill("show me running shoes")
    page.get_by_test_id("sa-send").click()
    page.locator(".sa-card").first.wait_for(timeout=30000)
    assert page.locator(".sa-card").count() >= 1

    # The conversation survives a reload.
    page.reload()
    page.locator(".sa-msg-user", has_text="running shoes").wait_for(state="attached", timeout=10000)
    page.close()


def test_text_is_rendered_as_text_not_html(stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(stack.gateway_url + "/")
    page.evaluate("window.__pwned = false")
    page.get_by_test_id("sa-bubble").click()
    hostile = '<img src=x onerror="window.__pwned=true">'
    page.get_by_test_id("sa-input").fill(hostile)
    page.get_by_test_id("sa-input").press("Enter")
    page.locator(".sa-msg-user", has_text="<img").wait_for()
    page.locator(".sa-msg-bot").last.wait_for(timeout=30000)
    assert page.evaluate("window.__pwned") is False
    assert page.locator(".sa-msg-user img").count() == 0
    page.close()


def test_widget_fits_a_phone_screen(stack, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 375, "height": 667})
    page.goto(stack.gateway_url + "/")
    page.get_by_test_id("sa-bubble").click()
    box = page.get_by_test_id("sa-panel").bounding_box()
    assert box is not None and box["width"] <= 375 and box["width"] >= 360
    page.keyboard.press("Escape")
    page.get_by_test_id("sa-panel").wait_for(state="hidden")
    page.close()
