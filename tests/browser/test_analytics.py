"""Analytics for support leads: every figure against a hand-counted fixture, the CSV export, access rules, the page.

The fixture (tests/fixtures/analytics_events.json) is written into a real SQLite tracker store in Rasa's
own ``events`` format, its tickets into the test database; the real gateway (uvicorn on a free port)
answers over HTTP for a logged-in lead. The page is checked in a real Chromium under its CSP.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from bot.analytics import metrics
from bot.auth import users
from bot.clock import utcnow
from bot.config import Settings
from bot.db import session_scope
from bot.handoff.tables import RESOLVED, Ticket
from bot.rasa_events import EVENTS, create_events_table, tracker_engine
from tests.conftest import ROOT
from tests.support.gateway_server import Gateway

FIXTURES = ROOT / "tests" / "fixtures"
EVENTS_FILE = FIXTURES / "analytics_events.json"
EXPECTED = json.loads((FIXTURES / "analytics_expected.json").read_text())
PERIOD = {"since": EXPECTED["period"]["since"], "until": EXPECTED["period"]["until"]}
PASSWORD = "a long enough lead password"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def write_tracker(url: str, rows: list[dict[str, Any]]) -> None:
    """The fixture's events as Rasa's SQLTrackerStore stores them (one row per event, ``data`` = the event JSON)."""
    create_events_table(url)
    records = []
    for row in rows:
        event = dict(row["event"])
        at = _at(row["at"])
        assert at is not None
        event["timestamp"] = float(calendar.timegm(at.timetuple()))
        records.append({"sender_id": row["sender_id"], "type_name": event["event"], "timestamp": event["timestamp"],
                        "intent_name": (event.get("parse_data") or {}).get("intent", {}).get("name"),
                        "action_name": event.get("name"), "data": json.dumps(event)})
    with tracker_engine(url).begin() as conn:
        conn.execute(EVENTS.insert(), records)


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fixture's events in a tracker store of their own, its tickets in the test database; the tracker URL."""
    data = json.loads(EVENTS_FILE.read_text())
    url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'tracker.sqlite3'}"
    write_tracker(url, data["events"])
    with session_scope() as session:
        ids = []
        for t in data["tickets"]:
            ticket = Ticket(conversation_id=t["conversation_id"], reason=t["reason"], status=RESOLVED,
                            created_at=_at(t["created_at"]), resolved_at=_at(t["resolved_at"]), rating=t["rating"],
                            rated_at=_at(t["rated_at"]), context={}, priority=0)
            session.add(ticket)
            session.flush()
            ids.append(ticket.id)
    yield url
    with session_scope() as session:
        session.execute(delete(Ticket).where(Ticket.id.in_(ids)))


@pytest.fixture(scope="module")
def gateway(fixture_data: str) -> Iterator[Gateway]:
    running = Gateway(Settings(tracker_store_url=fixture_data))
    yield running
    running.close()


def make_user(role: str) -> users.UserView:
    with session_scope() as session:
        return users.create_user(session, f"{role}-{uuid.uuid4().hex[:8]}", PASSWORD, role, f"Test {role}")


def logged_in(gateway: Gateway, role: str) -> httpx.Client:
    user = make_user(role)
    client = httpx.Client(base_url=gateway.url, trust_env=False, timeout=30)
    form = client.get("/agent/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text
    response = client.post("/agent/login", data={"username": user.username, "password": PASSWORD,
                                                  "csrf": token.group(1)})
    assert response.status_code == 303, response.text
    return client


@pytest.fixture(scope="module")
def lead(gateway: Gateway) -> Iterator[httpx.Client]:
    client = logged_in(gateway, "lead")
    yield client
    client.close()


# --------------------------------------------------------------------------- the figures


def test_every_figure_matches_the_hand_count(lead: httpx.Client) -> None:
    response = lead.get("/admin/api/analytics", params=PERIOD)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["since"], report["until"]) == (PERIOD["since"], PERIOD["until"])
    assert set(EXPECTED["figures"]) == set(metrics.FIGURES) == set(report["figures"])  # a new figure needs a count
    for figure, expected in EXPECTED["figures"].items():
        assert report[figure] == expected, f"{figure}: {EXPECTED['how'][figure]}"


def test_a_one_day_period_counts_only_that_day(lead: httpx.Client) -> None:
    report = lead.get("/admin/api/analytics", params={"since": "2021-06-08", "until": "2021-06-08"}).json()
    assert report["conversations_per_day"] == {"total": 2, "days": [{"date": "2021-06-08", "conversations": 2}]}
    assert report["containment"] == {"conversations": 2, "contained": 1, "handed_off": 1, "rate": 0.5}
    assert report["escalation"]["by_reason"] == [{"reason": "negative_mood", "conversations": 1, "rate": 0.5}]
    assert (report["fallback"]["typed_messages"], report["fallback"]["fallback_messages"]) == (6, 2)
    assert report["funnel"]["searches"] == 1 and report["funnel"]["card_clicks"] == 0
    assert report["satisfaction"]["rated_chats"] == 1 and report["satisfaction"]["average"] == 2.0
    # a day with nothing at all: zeros and empty rates, not errors
    quiet = lead.get("/admin/api/analytics", params={"since": "2020-01-01", "until": "2020-01-02"}).json()
    assert quiet["containment"] == {"conversations": 0, "contained": 0, "handed_off": 0, "rate": None}
    assert quiet["satisfaction"]["average"] is None and quiet["sentiment"]["classes"][0]["share"] is None


def test_the_default_period_is_the_last_30_days(lead: httpx.Client) -> None:
    report = lead.get("/admin/api/analytics").json()
    until = date.fromisoformat(report["until"])
    assert abs((until - utcnow().date()).days) <= 1
    assert date.fromisoformat(report["since"]) == until - timedelta(days=29)
    assert len(report["conversations_per_day"]["days"]) == 30


@pytest.mark.parametrize(("params", "wanted"), [
    ({"since": "2021-13-01", "until": "2021-06-09"}, "must be a date like"),
    ({"since": "2021-W23-1", "until": "2021-06-09"}, "must be a date like"),
    ({"since": "2021-06-09", "until": "2021-06-07"}, "is after the end date"),
    ({"since": "2019-01-01", "until": "2021-06-09"}, "at most 366 days"),
])
def test_a_bad_period_gets_a_clear_400(lead: httpx.Client, params: dict[str, str], wanted: str) -> None:
    response = lead.get("/admin/api/analytics", params=params)
    assert response.status_code == 400
    assert response.json()["detail"]["error"] == "bad_period" and wanted in response.json()["detail"]["message"]
    assert lead.get("/admin/analytics/funnel.csv", params=params).status_code == 400


# --------------------------------------------------------------------------- CSV


def read_csv(response: httpx.Response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


def test_each_figure_downloads_as_csv(lead: httpx.Client) -> None:
    response = lead.get("/admin/analytics/escalation.csv", params=PERIOD)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="analytics-escalation-2021-06-07-to-2021-06-09.csv"')
    assert read_csv(response) == [["reason", "handed_off_conversations", "conversations", "rate"],
                                  ["explicit_request", "1", "8", "0.125"], ["negative_mood", "1", "8", "0.125"],
                                  ["unknown", "1", "8", "0.125"], ["all reasons", "3", "8", "0.375"]]
    rows = read_csv(lead.get("/admin/analytics/conversations_per_day.csv", params=PERIOD))
    assert rows == [["date", "conversations"], ["2021-06-07", "3"], ["2021-06-08", "2"], ["2021-06-09", "3"]]
    rows = read_csv(lead.get("/admin/analytics/funnel.csv", params=PERIOD))
    assert rows == [["step", "events", "conversations", "rate_from_previous_step"], ["searches", "5", "4", ""],
                    ["card_clicks", "4", "3", "0.8"], ["add_to_carts", "2", "2", "0.5"]]
    rows = read_csv(lead.get("/admin/analytics/top_intents.csv", params=PERIOD))
    expected = EXPECTED["figures"]["top_intents"]["intents"]
    assert rows[1:] == [[i["intent"], str(i["count"]), str(i["share"])] for i in expected]
    rows = read_csv(lead.get("/admin/analytics/sentiment.csv", params=PERIOD))
    assert rows[1:5] == [["class", "negative", "", "", "4", "0.2353"], ["class", "neutral", "", "", "8", "0.4706"],
                         ["class", "positive", "", "", "5", "0.2941"], ["class", "unscored", "", "", "1", ""]]
    assert rows[-1] == ["histogram", "bin 10", "0.8", "1.0", "1", "0.0588"]
    for figure in metrics.FIGURES:
        response = lead.get(f"/admin/analytics/{figure}.csv", params=PERIOD)
        assert response.status_code == 200 and len(read_csv(response)) >= 2, figure
    missing = lead.get("/admin/analytics/revenue.csv", params=PERIOD)
    assert missing.status_code == 404 and "funnel" in missing.json()["detail"]["message"]


# --------------------------------------------------------------------------- who may see it


def test_only_leads_see_analytics(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as anonymous:
        page = anonymous.get("/admin/analytics")
        assert page.status_code == 303 and page.headers["location"] == "/agent/login?next=/admin/analytics"
        assert anonymous.get("/admin/api/analytics").status_code == 401
        assert anonymous.get("/admin/analytics/funnel.csv").status_code == 401
    agent = logged_in(gateway, "agent")
    try:
        assert agent.get("/admin/api/analytics", params=PERIOD).status_code == 403
        assert agent.get("/admin/analytics/funnel.csv", params=PERIOD).status_code == 403
        page = agent.get("/admin/analytics")
        assert page.status_code == 403 and "for support leads" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    finally:
        agent.close()


def test_the_page_has_no_inline_script_or_style(lead: httpx.Client) -> None:
    page = lead.get("/admin/analytics")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and page.headers["x-frame-options"] == "DENY"
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == [] and "<style" not in page.text
    assert " style=" not in page.text and not re.search(r"\son[a-z]+=", page.text)
    for asset, kind in (("analytics.js", "javascript"), ("analytics.css", "text/css")):
        response = lead.get(f"/admin/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert "innerHTML" not in lead.get("/admin/static/analytics.js").text


# --------------------------------------------------------------------------- the page in a browser


@pytest.mark.browser
def test_the_page_draws_every_figure_in_a_browser(gateway: Gateway) -> None:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    user = make_user("lead")
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(gateway.url + "/admin/analytics")
            assert "/agent/login" in page.url
            page.fill("#username", user.username)
            page.fill("#password", PASSWORD)
            page.press("#password", "Enter")
            page.wait_for_load_state()
            page.goto(f"{gateway.url}/admin/analytics?since={PERIOD['since']}&until={PERIOD['until']}")
            page.locator("body[data-loaded='2021-06-07/2021-06-09']").wait_for(timeout=20000)
            page.get_by_test_id("me").filter(has_text="Test lead").wait_for()
            for figure in metrics.FIGURES:
                section = page.get_by_test_id(f"figure-{figure}")
                assert section.locator("svg.svg-chart").count() >= 1, figure
                href = page.get_by_test_id(f"csv-{figure}").get_attribute("href")
                assert href == f"/admin/analytics/{figure}.csv?since=2021-06-07&until=2021-06-09"
            assert page.get_by_test_id("figure-containment").locator(".headline").inner_text() == (
                "62.5% contained (5 of 8 conversations)")
            assert page.get_by_test_id("figure-satisfaction").locator(".headline").inner_text() == (
                "3.67 / 5 from 3 rated chats")
            assert page.get_by_test_id("figure-conversations_per_day").locator("rect.bar").count() == 3
            assert page.get_by_test_id("figure-top_intents").locator("svg text", has_text="search_product").count() == 1
            # another period through the form, with the keyboard
            page.get_by_test_id("since").fill("2021-06-08")
            page.get_by_test_id("until").fill("2021-06-08")
            page.get_by_test_id("until").press("Enter")
            page.locator("body[data-loaded='2021-06-08/2021-06-08']").wait_for(timeout=20000)
            assert page.get_by_test_id("figure-conversations_per_day").locator(".headline").inner_text() == (
                "2 conversations in this period")
            assert page.url.endswith("/admin/analytics?since=2021-06-08&until=2021-06-08")
            # a bad period is explained in the alert region
            page.get_by_test_id("since").fill("2021-06-09")
            page.get_by_test_id("apply").click()
            page.get_by_test_id("alert").filter(has_text="after the To date").wait_for()
            # the CSV link downloads the figure
            page.get_by_test_id("since").fill("2021-06-07")
            page.get_by_test_id("until").fill("2021-06-09")
            page.get_by_test_id("apply").click()
            page.locator("body[data-loaded='2021-06-07/2021-06-09']").wait_for(timeout=20000)
            with page.expect_download() as download:
                page.get_by_test_id("csv-funnel").click()
            saved = Path(download.value.path())
            assert saved.read_text().splitlines()[1] == "searches,5,4,"
            page.get_by_test_id("logout").click()
            page.wait_for_url(gateway.url + "/agent/login")
        finally:
            browser.close()
    assert problems == [], problems
