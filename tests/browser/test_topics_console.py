"""Topics in the lead console, through the real app: a recluster job on a small tracker store in Rasa's
format (a temporary SQLite file), the list, labelling selected messages (checked with the NLU inbox's own
query), marking a topic out of scope, and a knowledge entry written to a copy of the policy file."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.auth import users
from bot.config import Settings
from bot.db import migrate, session_scope
from bot.knowledge.shop_policy_file import ShopPolicy
from bot.training import nlu_inbox
from bot.training.tables import NluMessage
from bot.web.app import create_app
from tests.support.console_login import login as console_login
from tests.unit.test_topics import _tracker

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"


def _login(client: TestClient, user: users.UserView) -> str:
    return console_login(client, user, PASSWORD)


def _wait(client: TestClient) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = client.get("/admin/api/topics/job").json()
        if job["state"] != "running":
            return job  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError("the recluster job did not finish")


def _inbox(db_url: str, status: str) -> list[dict[str, Any]]:
    with session_scope(db_url) as session:
        query = nlu_inbox.InboxQuery.parse({"status": status, "page_size": "200"})
        return nlu_inbox.list_groups(session, query, ROOT)["groups"]  # type: ignore[no-any-return]


def test_topics_console_api(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    migrate(db_url)
    tracker = _tracker(tmp_path)
    policy = tmp_path / "shop_policy.yml"
    shutil.copy(ROOT / "data" / "shop_policy.yml", policy)
    tag = uuid.uuid4().hex[:6]
    with session_scope(db_url) as s:
        lead = users.create_user(s, f"lead-{tag}", PASSWORD, "lead", "Lena Lead")
        agent = users.create_user(s, f"agent-{tag}", PASSWORD, "agent", "Alex Agent")
    app = create_app(Settings(database_url=db_url, tracker_store_url=tracker, rasa_url="http://127.0.0.1:9",
                              actions_url="http://127.0.0.1:9", policy_file=policy))
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/admin/api/topics").status_code == 401
        assert client.post("/admin/api/topics/recluster", json={"scope": "all"}).status_code == 401
        csrf = _login(client, agent)
        assert client.get("/admin/api/topics").status_code == 403
        client.post("/agent/logout", headers={"X-CSRF-Token": csrf})
        csrf = _login(client, lead)
        headers = {"X-CSRF-Token": csrf}
        assert client.get("/admin/api/topics").json()["topics"] == []  # never clustered
        assert client.get("/admin/api/topics?scope=everything").status_code == 422

        started = client.post("/admin/api/topics/recluster", json={"scope": "all"}, headers=headers)
        assert started.status_code == 202, started.text
        job = _wait(client)
        assert job["state"] == "done" and job["done"] == job["total"] == 5, job
        assert job["result"]["messages"] == 36 and job["result"]["topics"] >= 2

        listed = client.get("/admin/api/topics?scope=all&members=5").json()
        topics = listed["topics"]
        assert topics and "track_order" in listed["intents"]
        invoice = next(t for t in topics if "invoice" in t["name"])
        assert invoice["escalation_rate"] == 1.0 and len(invoice["representatives"]) == 5
        assert sum(d["count"] for d in invoice["per_day"]) == invoice["size"]
        assert len(invoice["members"]) == 5 and invoice["members"][0]["status"] == "open"
        assert not invoice["out_of_scope"]

        # label two selected messages to a new intent: they reach the NLU inbox, labelled
        chosen = [m["id"] for m in invoice["members"][:2]]
        path = f"/admin/api/topics/{invoice['id']}/label"
        unknown = client.post(path, json={"message_ids": chosen, "intent": "invoice_copy"}, headers=headers)
        assert unknown.status_code == 400 and unknown.json()["detail"]["error"] == "unknown_intent"
        assert client.post(path, json={"message_ids": [999_999], "intent": "get_invoice"},
                           headers=headers).status_code == 404
        done = client.post(path, json={"message_ids": chosen, "intent": "invoice_copy", "new_intent": True},
                           headers=headers)
        assert done.status_code == 200 and done.json()["updated"] == 2, done.text
        texts = {m["text"] for m in invoice["members"][:2]}
        labelled = _inbox(db_url, "labelled")
        assert {g["text"] for g in labelled} == texts and {g["label_intent"] for g in labelled} == {"invoice_copy"}
        with session_scope(db_url) as s:
            assert "invoice_copy" in nlu_inbox.labels_summary(s, ROOT)["new_intents"]
        again = client.get("/admin/api/topics?members=200").json()["topics"]
        statuses = {m["id"]: (m["status"], m["label"]) for t in again for m in t["members"]}
        assert all(statuses[i] == ("labelled", "invoice_copy") for i in chosen)

        # out of scope: every member of another topic
        other = next(t for t in topics if t["id"] != invoice["id"])
        marked = client.post(f"/admin/api/topics/{other['id']}/out-of-scope", headers=headers)
        assert marked.status_code == 200 and marked.json()["updated"] == other["size"], marked.text
        assert len(_inbox(db_url, "out_of_scope")) >= 1
        with session_scope(db_url) as s:
            assert s.query(NluMessage).filter(NluMessage.status == "out_of_scope").count() == other["size"]
        after = {t["id"]: t for t in client.get("/admin/api/topics").json()["topics"]}
        assert after[other["id"]]["out_of_scope"] and not after[invoice["id"]]["out_of_scope"]
        assert client.post("/admin/api/topics/999999/out-of-scope", headers=headers).status_code == 404

        # a knowledge entry lands in the policy file, keeps its comments, and loads
        before = policy.read_text(encoding="utf-8")
        body = {"topic_key": "invoice_copies", "label": "Invoice copies",
                "answer": "Write to {{ shop.support.email }} and we send a copy of your invoice."}
        added = client.post(f"/admin/api/topics/{invoice['id']}/knowledge", json=body, headers=headers)
        assert added.status_code == 201, added.text
        loaded = ShopPolicy.load(policy)
        entry = loaded.entry("invoice_copies")
        assert entry is not None and entry.label == "Invoice copies"
        assert entry.questions == tuple(invoice["representatives"])
        assert "help@northwind-outfitters.example" in loaded.answer("invoice_copies").text
        text = policy.read_text(encoding="utf-8")
        assert text.startswith(before.rstrip("\n").split("\nanswers:")[0]) and "# Answers (`answers:` below)" in text
        duplicate = client.post(f"/admin/api/topics/{invoice['id']}/knowledge", json=body, headers=headers)
        assert duplicate.status_code == 422 and duplicate.json()["detail"]["error"] == "duplicate_topic"
        broken = client.post(f"/admin/api/topics/{invoice['id']}/knowledge", headers=headers,
                             json={**body, "topic_key": "broken_one", "answer": "{{ no_such_fact.x }}"})
        assert broken.status_code == 422 and broken.json()["detail"]["error"] == "invalid_entry"
        assert policy.read_text(encoding="utf-8") == text  # a refused entry leaves the file alone
        assert client.post(f"/admin/api/topics/{invoice['id']}/knowledge", headers=headers,
                           json={**body, "topic_key": "Bad Key"}).status_code == 422


@pytest.mark.parametrize("scope", ["fallback"])
def test_the_fallback_scope_reclusters_on_its_own(tmp_path: Path, scope: str) -> None:
    db_url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    migrate(db_url)
    tracker = _tracker(tmp_path)
    with session_scope(db_url) as s:
        lead = users.create_user(s, "lead-fallback", PASSWORD, "lead", "Lena Lead")
    app = create_app(Settings(database_url=db_url, tracker_store_url=tracker, rasa_url="http://127.0.0.1:9",
                              actions_url="http://127.0.0.1:9"))
    with TestClient(app, base_url="http://localhost") as client:
        csrf = _login(client, lead)
        assert client.post("/admin/api/topics/recluster", json={"scope": scope},
                           headers={"X-CSRF-Token": csrf}).status_code == 202
        job = _wait(client)
        assert job["state"] == "done" and job["scope"] == scope and job["result"]["messages"] == 12
        topics = client.get(f"/admin/api/topics?scope={scope}").json()["topics"]
        assert client.get("/admin/api/topics?scope=all").json()["topics"] == []
        assert topics and {i for t in topics for m in t["members"] for i in [m["intent"]]} == {"cancel_order"}


@pytest.mark.browser
@pytest.mark.integration
def test_the_topics_tab_reclusters_shows_a_topic_and_labels_from_the_page(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    from tests.browser.test_browser_console import LEAD_NAME, Console, open_console
    from tests.browser.test_browser_console import PASSWORD as CONSOLE_PASSWORD
    from tests.support.gateway_server import Gateway

    tracker = _tracker(tmp_path)
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}", tracker_store_url=tracker,
                        rasa_url="http://127.0.0.1:9", inbox_sample_rate=0.0)
    gateway = Gateway(settings)
    try:
        username = f"lina-{uuid.uuid4().hex[:6]}"
        with session_scope(settings.database_url) as s:
            lead = users.create_user(s, username, CONSOLE_PASSWORD, "lead", LEAD_NAME)
        context, page, problems = open_console(browser, Console(gateway.url, settings, lead.id, username, tmp_path),
                                               "#topics")
        expect(page.get_by_test_id("view-topics")).to_be_visible()
        expect(page.get_by_test_id("topics-list")).to_contain_text("No topics yet")
        page.get_by_test_id("topics-recluster").click()
        card = page.get_by_test_id("topic-card").filter(has_text="invoice").first
        expect(card).to_be_visible(timeout=120_000)
        expect(page.get_by_test_id("topics-job")).to_contain_text("done (5/5)")
        assert card.locator("svg.topic-trend rect").count() >= 1
        boxes = card.get_by_test_id("topic-member")
        boxes.nth(0).check()
        boxes.nth(1).check()
        texts = [card.locator("li label").nth(i).inner_text() for i in range(2)]
        card.get_by_test_id("topic-new-intent").fill("invoice_copy")
        card.get_by_test_id("topic-label").click()
        expect(page.get_by_test_id("status")).to_contain_text("2 messages labelled invoice_copy")
        card = page.get_by_test_id("topic-card").filter(has_text="invoice").first
        expect(card.locator("li label").filter(has_text="invoice_copy")).to_have_count(2)
        with session_scope(settings.database_url) as s:
            rows = list(s.query(NluMessage).filter(NluMessage.label_intent == "invoice_copy"))
            assert len(rows) == 2 and all(r.text in " ".join(texts) for r in rows) and all(r.in_inbox for r in rows)
        assert problems == []
        context.close()
    finally:
        gateway.close()
