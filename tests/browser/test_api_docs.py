"""The API documentation: ``/docs`` renders in a real Chromium under the gateway's own Content-Security-Policy
(every asset from this origin, nothing inline), ``/redoc`` is off, and ``/openapi.json`` documents the
chat, shop, demo, agent and lead APIs with their tags and response codes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.web.app import create_app
from tests.support.gateway_server import down_url, running_gateway

WAIT_MS = 20000
WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""
AUTH_TAGS = {"agent", "lead"}


def gateway_settings() -> Settings:
    down = down_url()
    return Settings(rasa_url=down, actions_url=down, rasa_timeout_s=2.0)


@pytest.fixture(scope="module")
def gateway(catalog: int) -> Iterator[str]:
    with running_gateway(gateway_settings()) as url:
        yield url


def test_the_docs_page_loads_only_same_origin_assets_that_its_csp_allows(gateway: str) -> None:
    page = httpx.get(gateway + "/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<style" not in page.text and "style=" not in page.text
    scripts = re.findall(r'<script src="([^"]+)"></script>', page.text)
    assert len(scripts) == page.text.count("<script") == 2  # no inline script: both have a src
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text)
    assert styles
    for url in [*scripts, *styles]:
        assert url.startswith("/") and not url.startswith("//"), url  # this origin, no CDN
        asset = httpx.get(gateway + url)
        assert asset.status_code == 200 and asset.content, url
        wanted = "javascript" if url.endswith(".js") else "text/css"
        assert wanted in asset.headers["content-type"], (url, asset.headers["content-type"])
    assert httpx.get(gateway + "/docs/static/swagger-ui.js").status_code == 404  # only what the page uses
    assert httpx.get(gateway + "/redoc").status_code == 404  # off: its page would load ReDoc from a CDN
    assert httpx.get(gateway + "/openapi.json").json()["info"]["title"] == "shop-assistant gateway"


@pytest.mark.browser
def test_the_docs_page_renders_in_chromium_without_a_csp_violation(gateway: str, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.goto(gateway + "/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="shop-assistant gateway").wait_for(timeout=WAIT_MS)
    for tag in ("chat", "demo", "agent", "lead"):
        page.locator(f"#operations-tag-{tag}").wait_for(timeout=WAIT_MS)
    page.locator("#operations-chat-chat_api_chat_post").wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.__violations") == []
    assert not problems, problems
    context.close()


def test_the_schema_documents_every_api(catalog: int) -> None:
    """The agent, lead and demo APIs are in the schema with tags and response codes; pages and assets are not."""
    spec: dict[str, Any] = create_app(gateway_settings()).openapi()
    paths = spec["paths"]
    for path in ("/api/chat", "/api/tickets/{ticket_id}/rating", "/api/demo/customers", "/api/demo/token",
                 "/agent/api/me", "/agent/api/queue", "/agent/api/tickets/{ticket_id}/claim",
                 "/agent/api/tickets/{ticket_id}/resolve", "/admin/api/models", "/admin/api/models/{version}/activate",
                 "/admin/api/inbox", "/admin/api/inbox/label", "/admin/api/analytics", "/products/{product_id}",
                 "/media/products/{product_id}.svg"):
        assert path in paths, path
    assert not [p for p in paths if p.startswith(("/agent/static", "/admin/static", "/docs", "/static"))
                or p in ("/agent", "/admin", "/agent/login", "/admin/analytics", "/")]
    declared = {tag["name"] for tag in spec["tags"]}
    for path, item in paths.items():
        for method, operation in item.items():
            assert operation.get("tags") and set(operation["tags"]) <= declared, (method, path)
            if AUTH_TAGS & set(operation["tags"]):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
    claim = paths["/agent/api/tickets/{ticket_id}/claim"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(claim["responses"])
    for path, name in (("/agent/api/tickets/{ticket_id}/claim", "ticket_id"), ("/products/{product_id}", "product_id"),
                       ("/admin/api/models/{version}/activate", "version")):
        operation = next(iter(paths[path].values()))
        bounds = next(p for p in operation["parameters"] if p["name"] == name)["schema"]
        assert bounds["minimum"] == 1 and bounds["maximum"] == 2**31 - 1, (path, bounds)
