"""The README's one script tag on a page of another origin (real Chromium, issue 16 item 2): with the demo's
defaults the widget connects and the assistant answers; where the shop has not allowed the page's origin the
widget says so plainly and stops, instead of "Reconnecting…" forever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.config import Settings
from tests.support.gateway_server import down_url, running_gateway

pytestmark = [pytest.mark.browser]
REFUSED = "isn't available on this website"


@contextmanager
def shop_page(gateway_url: str) -> Iterator[str]:
    """Somebody's shop: a page on its own port (another origin than the gateway) that embeds the widget."""
    html = (f'<!doctype html><html><head><title>Another shop</title></head><body><h1>Another shop</h1>'
            f'<script src="{gateway_url}/widget.js" defer></script></body></html>').encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert url.rstrip("/") != gateway_url
        yield url
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_the_widget_on_another_origin_connects_and_gets_answers(stack, browser) -> None:  # type: ignore[no-untyped-def]
    """The demo stack as `make run` starts it (no SHOP_ALLOWED_ORIGINS): any page may embed the chat."""
    with shop_page(stack.gateway_url) as url:
        page = browser.new_page()
        try:
            page.goto(url)
            page.get_by_test_id("sa-bubble").click()
            page.get_by_test_id("sa-input").fill("hello")
            page.get_by_test_id("sa-input").press("Enter")
            page.locator(".sa-msg-bot", has_text="shopping assistant").wait_for(timeout=30000)
            assert page.get_by_test_id("sa-status").text_content() == ""
            assert page.locator(".sa-msg-system").count() == 0
        finally:
            page.close()


def test_the_widget_says_when_the_shop_has_not_allowed_the_page(catalog: int, browser) -> None:  # type: ignore[no-untyped-def]
    down = down_url()
    allowed_elsewhere = Settings(rasa_url=down, actions_url=down, rasa_timeout_s=2.0,
                                 allowed_origins="https://shop.example")
    with running_gateway(allowed_elsewhere) as gateway, shop_page(gateway) as url:
        page = browser.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        try:
            page.goto(url)
            page.get_by_test_id("sa-bubble").click()
            page.get_by_test_id("sa-input").fill("hello")
            page.get_by_test_id("sa-input").press("Enter")
            page.locator(".sa-msg-system", has_text=REFUSED).wait_for(timeout=15000)
            assert page.get_by_test_id("sa-status").text_content() == "Not available on this page"
            page.wait_for_timeout(3000)  # the widget's first retry would come within a second
            assert len(sockets) == 1, sockets
            assert page.get_by_test_id("sa-status").text_content() == "Not available on this page"
            # another try says it again (once in a row) and keeps what the shopper typed
            page.get_by_test_id("sa-input").fill("anyone there?")
            page.get_by_test_id("sa-input").press("Enter")
            assert page.get_by_test_id("sa-input").input_value() == "anyone there?"
            assert page.locator(".sa-msg-system", has_text=REFUSED).count() == 1
            assert page.locator(".sa-msg-user", has_text="anyone there?").count() == 0
            assert len(sockets) == 1
        finally:
            page.close()
