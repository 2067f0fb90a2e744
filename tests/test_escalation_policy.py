"""The escalation policy inside Rasa: the real graph, ensemble and message processor.

- ``test_policy_in_rasas_message_processor``: tests/escalation_policy_rasa.py trains a small model with our
  sentiment component and EscalationPolicy beside RulePolicy (in the Rasa venv) and drives Rasa's processor.
- ``test_policy_through_the_real_server``: the project's trained model in the running stack, through Rasa's
  HTTP API (``/conversations/{id}/messages`` logs a message with its NLU parse, ``/predict`` asks what the
  policies choose next without running it).
- ``test_bench_with_rasa_nlu``: ``bench escalation --nlu rasa`` over the shipped dialogues.
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

from bot.sentiment import EscalationThresholds

ROOT = Path(__file__).resolve().parent.parent
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
ANGRY = "this is useless, third time I ask and it still hasn't arrived"
RESULT_PREFIX = "ESCALATION-POLICY-RESULT "


@pytest.fixture(scope="module")
def processor_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("escalation-policy")
    done = subprocess.run([str(RASA_PYTHON), "tests/escalation_policy_rasa.py", str(workdir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len(RESULT_PREFIX):])  # type: ignore[no-any-return]


def test_policy_in_rasas_message_processor(processor_run: dict[str, Any]) -> None:
    r = processor_run
    # mid-form: the form is waiting for the order number, and the angry message wins over the form's loop
    assert r["form_ask"] == ["What's the order number?"]
    angry = r["mid_form_angry"]
    assert (angry["action"], angry["policy"], angry["confidence"]) == ("action_escalate", "EscalationPolicy", 1.0)
    assert angry["active_loop"] == "track_order_form" and angry["no_user"] is True
    assert angry["metadata"]["escalation"]["reason"] == "very_negative_message"
    assert angry["sentiment"]["compound"] <= -0.85 and "third time i ask" in angry["sentiment"]["lexicon"]
    # the same moment with the order number: RulePolicy's form loop goes on
    calm = r["mid_form_calm"]
    assert (calm["action"], calm["policy"], calm["active_loop"]) == ("track_order_form", "RulePolicy",
                                                                      "track_order_form")
    # "cancel my order" is a request, not anger
    assert r["neutral_cancel"]["action"] == "utter_cancel" and r["neutral_cancel"]["sentiment"]["compound"] >= 0
    assert r["explicit"]["action"] == "action_escalate"
    assert r["explicit"]["metadata"]["escalation"]["reason"] == "explicit_request"
    assert r["fallback_3_intent_ok"], r["fallback_3"]
    assert r["fallback_3"]["action"] == "action_escalate"
    assert r["fallback_3"]["metadata"]["escalation"]["reason"] == "repeated_fallback"
    # VIP sooner: the same mildly negative message escalates a VIP only
    assert r["vip_mild"]["action"] == "action_escalate"
    assert r["vip_mild"]["metadata"]["escalation"]["reason"] == "vip_negative_mood"
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
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=60.0)

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
    api = RasaAPI(stack.rasa_url)
    thresholds = EscalationThresholds.from_env()

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

    # 4. misunderstood messages in a row
    lost = _sender("fallbacks")
    texts = ["what's the weather like in Berlin tomorrow", "who won the football game last night",
             "can you do my maths homework", "what's the capital of Australia", "sing me a song"]
    for i, text in enumerate(texts[:thresholds.fallback_streak], start=1):
        intent = api.log(lost, text)["intent"]
        assert intent["name"] in thresholds.fallback_intents or intent["confidence"] < thresholds.low_confidence, \
            (text, intent)
        expected = i >= thresholds.fallback_streak
        assert (api.predict(lost)["action"] == "action_escalate") == expected, (i, text)

    # 5. VIP sooner: the same mildly negative message
    mild = "my parcel is a bit late, not ideal"
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


def test_bench_with_rasa_nlu() -> None:
    from bot.sentiment_bench import benchmark
    from bot.training import rasa_model

    if not rasa_model.model_path().exists():
        pytest.fail("no trained Rasa model: run `make model` (make test does) first")
    result = benchmark(ROOT / "tests" / "escalation_dialogues.jsonl", nlu="rasa",
                       thresholds=EscalationThresholds())
    assert result["nlu"] == "rasa" and result["dialogues"] >= 40
    assert result["precision"] >= 0.8
    assert result["recall"] >= 0.7  # 0.76 measured with the model trained from this data
    assert result["false_escalation_rate"] <= 0.1
    assert {"explicit_request", "very_negative_message"} <= set(result["reasons"])
