"""The escalation policy inside Rasa: the real graph, ensemble and message processor.

- ``test_policy_in_rasas_message_processor``: tests/rasa/escalation_policy_rasa.py trains a small model with our
  sentiment component and EscalationPolicy beside RulePolicy (in the Rasa venv) and drives Rasa's processor.
- ``test_policy_through_the_real_server``: the project's trained model in the running stack, through Rasa's
  HTTP API (``/conversations/{id}/messages`` logs a message with its NLU parse, ``/predict`` asks what the
  policies choose next without running it).
- ``test_bench_with_rasa_nlu_meets_the_target_on_our_test_split``: ``bench escalation --nlu rasa`` on the test split.
- ``test_chat_*``: whole conversations over the gateway's ``/api/chat``: a rephrase loop, product criticism, giving up.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
ANGRY = "third time I ask: where is my order?? this is ridiculous, it still hasn't arrived"
RESULT_PREFIX = "ESCALATION-POLICY-RESULT "


@pytest.fixture(scope="module")
def processor_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("escalation-policy")
    done = subprocess.run([str(RASA_PYTHON), "tests/rasa/escalation_policy_rasa.py", str(workdir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len(RESULT_PREFIX):])  # type: ignore[no-any-return]


MODEL_REASONS = {"gave_up", "repeated_request", "bot_not_understanding", "service_complaint", "negative_mood"}


def test_policy_in_rasas_message_processor(processor_run: dict[str, Any]) -> None:
    r = processor_run
    # mid-form: the form is waiting for the order number, and the angry message wins over the form's loop
    assert r["form_ask"] == ["What's the order number?"]
    angry = r["mid_form_angry"]
    assert (angry["action"], angry["policy"], angry["confidence"]) == ("action_escalate", "EscalationPolicy", 1.0)
    assert angry["active_loop"] == "track_order_form" and angry["no_user"] is True
    assert angry["metadata"]["escalation"]["reason"] in MODEL_REASONS
    assert angry["metadata"]["escalation"]["signals"] and angry["metadata"]["escalation"]["score"] > 0.5
    assert angry["sentiment"]["compound"] <= -0.85 and "third time i ask" in angry["sentiment"]["lexicon"]
    assert angry["has_embedding"]  # the featurizer stores the embedding in the parse data for the signals
    # the same moment with the order number: RulePolicy's form loop goes on
    calm = r["mid_form_calm"]
    assert (calm["action"], calm["policy"], calm["active_loop"]) == ("track_order_form", "RulePolicy",
                                                                      "track_order_form")
    # "cancel my order" is a request, not anger
    assert r["neutral_cancel"]["action"] == "utter_cancel" and r["neutral_cancel"]["sentiment"]["compound"] >= 0
    assert r["explicit"]["action"] == "action_escalate"
    assert r["explicit"]["metadata"]["escalation"]["reason"] == "explicit_request"
    # a rephrase loop: not at the first or second attempt, at the third
    assert r["loop_1"]["action"] != "action_escalate" and r["loop_2"]["action"] != "action_escalate"
    assert r["loop_3"]["action"] == "action_escalate", r["loop_3"]
    assert r["loop_3"]["metadata"]["escalation"]["reason"] in ("repeated_request", "bot_not_understanding")
    # product criticism steers the search: no hand-over
    assert r["criticism_1"]["action"] != "action_escalate" and r["criticism_2"]["action"] != "action_escalate"
    # VIP sooner: the same mildly annoyed message escalates a VIP only
    assert r["vip_mild"]["action"] == "action_escalate"
    assert "vip customer" in r["vip_mild"]["metadata"]["escalation"]["detail"]
    assert r["regular_mild"]["action"] != "action_escalate"
    # never twice; after the agent hands back (resume), it can escalate again
    assert r["after_escalation"]["action"] == "track_order_form"
    assert r["after_resume"]["action"] == "action_escalate"
    # paused: logged with NLU and sentiment, no reply, no action
    paused = r["paused"]
    assert paused["replies"] == [] and paused["actions"] == []
    assert len(paused["user_events"]) == 1 and paused["user_events"][0]["compound"] <= -0.85


# ------------------------------------------------------------------------------------------ real server


class RasaAPI:
    def __init__(self, url: str, token: str) -> None:
        # the API wants ?token=, the REST webhook the same token as a bearer header (rasa_addons/rest_channel.py)
        self.client = httpx.Client(base_url=url, params={"token": token},
                                   headers={"Authorization": f"Bearer {token}"}, timeout=60.0)

    def say(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        reply = self.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text,
                                                                  "metadata": metadata or {}})
        reply.raise_for_status()
        return reply.json()  # type: ignore[no-any-return]

    def log(self, sender: str, text: str) -> dict[str, Any]:
        """The message with its NLU parse, as Rasa logs it, without predicting."""
        reply = self.client.post(f"/conversations/{sender}/messages", json={"text": text, "sender": "user"})
        reply.raise_for_status()
        return reply.json()["latest_message"]  # type: ignore[no-any-return]

    def predict(self, sender: str) -> dict[str, Any]:
        reply = self.client.post(f"/conversations/{sender}/predict")
        reply.raise_for_status()
        body = reply.json()
        return {"action": body["scores"][0]["action"], "policy": body["policy"], "confidence": body["confidence"],
                "active_loop": (body["tracker"].get("active_loop") or {}).get("name")}

    def append(self, sender: str, *events: dict[str, Any]) -> None:
        self.client.post(f"/conversations/{sender}/tracker/events", json=list(events)).raise_for_status()

    def events(self, sender: str) -> list[dict[str, Any]]:
        reply = self.client.get(f"/conversations/{sender}/tracker")
        reply.raise_for_status()
        return reply.json()["events"]  # type: ignore[no-any-return]


def _sender(name: str) -> str:
    return f"escalation-{name}-{uuid.uuid4().hex[:8]}"


def test_policy_through_the_real_server(stack: Any) -> None:
    api = RasaAPI(stack.rasa_url, stack.rasa_token)

    # 1. in the middle of track_order_form
    mid = _sender("midform")
    texts = [m.get("text", "") for m in api.say(mid, "where is my order")]
    assert any("order number" in t for t in texts), texts
    logged = api.log(mid, ANGRY)
    assert logged["sentiment"]["compound"] <= -0.85 and "still hasn't arrived" in logged["sentiment"]["lexicon"]
    prediction = api.predict(mid)
    assert prediction == {"action": "action_escalate", "policy": "EscalationPolicy", "confidence": 1.0,
                          "active_loop": "track_order_form"}

    # 2. a neutral request
    calm = _sender("cancel")
    logged = api.log(calm, "cancel my order")
    assert logged["intent"]["name"] == "cancel_order" and logged["sentiment"]["compound"] >= 0
    assert api.predict(calm)["action"] != "action_escalate"

    # 3. asking for a person
    explicit = _sender("explicit")
    assert api.log(explicit, "can I speak to a real person please")["intent"]["name"] == "contact_human_agent"
    assert api.predict(explicit)["action"] == "action_escalate"

    # 4. a rephrase loop the bot does not understand: whole turns (NLU, policies, actions); handed over by the
    # third attempt, not at the first
    loop = _sender("loop")
    attempts = ["can you gift wrap my order", "is gift wrapping available for orders",
                "do you offer gift wrap on an order"]
    escalated_at = None
    for i, text in enumerate(attempts):
        api.say(loop, text)
        if any(e["event"] == "action" and e.get("name") == "action_escalate" for e in api.events(loop)):
            escalated_at = i
            break
    assert escalated_at is not None and escalated_at >= 1, escalated_at

    # 5. VIP sooner: the same mildly annoyed message
    mild = "my refund still hasn't come through"
    outcomes = {}
    for segment in ("vip", "regular"):
        sender = _sender(segment)
        api.say(sender, "hi", metadata={"segment": segment})
        api.log(sender, mild)
        outcomes[segment] = api.predict(sender)["action"]
    assert outcomes["vip"] == "action_escalate" and outcomes["regular"] != "action_escalate", outcomes

    # 6. never twice: once action_escalate ran (here: appended), the policy stays quiet until the hand-back
    api.append(mid, {"event": "action", "name": "action_escalate"}, {"event": "action", "name": "action_listen"})
    api.log(mid, ANGRY)
    assert api.predict(mid)["action"] != "action_escalate"
    api.append(mid, {"event": "resume"}, {"event": "action", "name": "action_listen"})
    api.log(mid, ANGRY + "!!")
    assert api.predict(mid)["action"] == "action_escalate"

    # 7. paused: Rasa logs the message with its sentiment and answers nothing
    paused = _sender("paused")
    api.say(paused, "hi")
    api.append(paused, {"event": "pause"})
    before = len(api.events(paused))
    assert api.say(paused, ANGRY) == []
    new = api.events(paused)[before:]
    assert [e["event"] for e in new if e["event"] in ("user", "action", "bot")] == ["user"]
    assert new[-1]["parse_data"]["sentiment"]["compound"] <= -0.85


def test_bench_with_rasa_nlu_meets_the_target_on_our_test_split(tmp_path: Path) -> None:
    """``bench escalation --nlu rasa`` on the test split (written apart from train and dev): recall of 0.60 or
    more at 5% false escalations or fewer, next to the old sentiment-only policy; and the chart."""
    from benchmarks.escalation import run
    from bot.training import rasa_model

    if not rasa_model.model_path().exists():
        pytest.fail("no trained Rasa model: run `make model` (make test does) first")
    model, old = run(nlu="rasa", chart=tmp_path / "pr.png")
    assert model["policy"] == "model" and old["policy"] == "sentiment_only"
    assert model["dialogues"] >= 200 and model["labelled_dialogues"] >= 60
    assert model["recall"] >= 0.60 and model["false_escalation_rate"] <= 0.05, model
    assert model["recall"] > old["recall"] and model["false_escalation_rate"] < old["false_escalation_rate"]
    # the per-message cost is reported (its target is the benchmark's to print, not a timed assertion here)
    assert model["message_cost"]["p95_ms"] > 0
    assert (tmp_path / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ the shopper's chat


def _chat(stack: Any, conversation_id: str, text: str) -> list[dict[str, Any]]:
    reply = httpx.post(f"{stack.gateway_url}/api/chat", json={"conversation_id": conversation_id, "text": text},
                       timeout=60)
    reply.raise_for_status()
    return reply.json()["replies"]  # type: ignore[no-any-return]


def _handed_over(replies: list[dict[str, Any]]) -> bool:
    return any((r.get("custom") or {}).get("type") == "handoff" for r in replies)


def _first_handoff(stack: Any, messages: list[str]) -> int | None:
    """Index of the shopper's message at which the chat was handed to a person, or None."""
    conversation = f"chat-escalation-{uuid.uuid4().hex[:10]}"
    for i, text in enumerate(messages):
        if _handed_over(_chat(stack, conversation, text)):
            return i
    return None


def test_chat_a_rephrase_loop_is_handed_over_by_the_third_attempt(stack: Any) -> None:
    at = _first_handoff(stack, ["can you gift wrap my order", "is gift wrapping available for orders",
                                "do you offer gift wrap on an order", "gift wrap my order please"])
    assert at is not None and 1 <= at <= 2, at


def test_chat_product_criticism_is_not_handed_over(stack: Any) -> None:
    assert _first_handoff(stack, ["show me some jackets", "these look cheap, show me something nicer",
                                  "hmm, not great, these look a bit cheap", "I hate the color, show me blue",
                                  "ugh too pricey, anything cheaper?"]) is None


def test_chat_a_shopper_who_gives_up_is_handed_over(stack: Any) -> None:
    at = _first_handoff(stack, ["where is my order", "NW-1", "NW-2", "forget it"])
    assert at == 3, at
