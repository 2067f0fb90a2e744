"""bot.sentiment (VADER + shop lexicon, mood), bot.escalation.sentiment_triggers (the old triggers, tracker events)
and bench escalation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from benchmarks.sentiment import DatasetError, benchmark, load_dialogues
from bot.config import escalation_thresholds
from bot.escalation.episode import escalated_since_handback, segment_from_events
from bot.escalation.sentiment_triggers import (
    REASONS,
    EscalationThresholds,
    evaluate,
    evaluate_events,
    is_fallback,
    turns_from_events,
)
from bot.sentiment import Turn, mood_trajectory, score

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "tests" / "escalation_dialogues.jsonl"
ANGRY = "this is useless, third time I ask and it still hasn't arrived"


# ------------------------------------------------------------------------------------------- score


def test_requests_are_not_anger_although_plain_vader_says_so() -> None:
    vader = SentimentIntensityAnalyzer()
    assert vader.polarity_scores("cancel my order")["compound"] < -0.2  # what the shop lexicon corrects
    assert vader.polarity_scores("no thanks")["compound"] < -0.3
    for text in ("cancel my order", "I want a refund", "I'd like to cancel my order please", "no thanks",
                 "no, the blue one", "can I return these shoes?", "stop sending me newsletters"):
        assert score(text).compound > -0.1, text
        assert score(text).lexicon == (), text


def test_frustration_phrases_count_as_anger() -> None:
    angry = score(ANGRY)
    assert angry.compound <= -0.85
    assert angry.lexicon == ("still hasn't arrived", "third time i ask", "useless")
    assert angry.about_order
    assert score(ANGRY).compound < SentimentIntensityAnalyzer().polarity_scores(ANGRY)["compound"] - 0.3
    for text, phrase in (("my package still hasn't arrived", "still hasn't arrived"),
                         ("this is the third time I ask", "third time i ask"),
                         ("how many times do I have to tell you", "how many times"),
                         ("Never ordering from here again", "never ordering from here again"),
                         ("this is going round in circles", "going round in circles")):
        result = score(text)
        assert result.compound <= -0.45, (text, result)
        assert phrase in result.lexicon, (text, result)


def test_phrases_need_their_context() -> None:
    assert score("second time I order here, love the quality").compound > 0.5  # not "second time I ask"
    assert score("my order has arrived, thanks").compound > 0.3  # not "hasn't arrived"
    assert score("I'm still not sure which size to get").lexicon == ()  # "still not" + no order word


def test_vader_negation_does_not_cross_sentences() -> None:
    text = "I needed those shoes on Saturday and now I have nothing. absolutely furious"
    assert SentimentIntensityAnalyzer().polarity_scores(text)["compound"] > 0  # VADER's mistake
    assert score(text).compound < -0.5


def test_sarcastic_sign_off_and_shouting() -> None:
    assert score("so nobody actually knows where my desk is. great.").compound < -0.5
    assert score("Thanks, that works. great.").compound > 0.5  # a sign-off after a positive message stays positive
    shouted = score("INDUCTION. COMPATIBLE. YES OR NO")
    assert shouted.compound < -0.2 and "all caps" in shouted.lexicon
    assert score("HI THERE").compound == 0.0  # two words are not shouting


def test_button_payloads_and_empty_text_are_neutral() -> None:
    assert score('/inform{"order_number": "NW-100234"}').compound == 0.0
    assert score("   ").compound == 0.0


# ------------------------------------------------------------------------------------------- thresholds


def test_thresholds_from_env() -> None:
    t = EscalationThresholds.from_env({
        "SHOP_ESCALATION_MOOD_THRESHOLD": "-0.5", "SHOP_ESCALATION_FALLBACK_STREAK": "2",
        "SHOP_ESCALATION_VIP_SEGMENTS": "vip, big_spender", "SHOP_ESCALATION_MOOD": "last",
        "OTHER": "ignored",
    })
    assert (t.mood_threshold, t.fallback_streak, t.vip_segments, t.mood) == (-0.5, 2, ("vip", "big_spender"), "last")
    assert EscalationThresholds.from_env({}) == EscalationThresholds()


def test_the_process_environment_sets_the_thresholds_of_the_action_and_benchmarks() -> None:
    """bot.config.escalation_thresholds hands EscalationThresholds only the SHOP_ESCALATION_* variables."""
    t = escalation_thresholds({"SHOP_ESCALATION_MOOD": "mean", "SHOP_ESCALATION_MIN_TURNS": "3", "PATH": "/bin"})
    assert (t.mood, t.min_turns) == ("mean", 3)
    with pytest.raises(ValueError, match="SHOP_ESCALATION_MOOD_ALPHA: must be greater than 0"):
        escalation_thresholds({"SHOP_ESCALATION_MOOD_ALPHA": "0"})


@pytest.mark.parametrize(("env", "message"), [
    ({"SHOP_ESCALATION_MOOD_THRESHOLD": "angry"}, "SHOP_ESCALATION_MOOD_THRESHOLD: expected float"),
    ({"SHOP_ESCALATION_MOOD_THRESHOLD": "-1.5"}, "SHOP_ESCALATION_MOOD_THRESHOLD: must be between -1 and 1"),
    ({"SHOP_ESCALATION_FALLBACK_STREAK": "0"}, "SHOP_ESCALATION_FALLBACK_STREAK: must be at least 1"),
    ({"SHOP_ESCALATION_FALLBACK_STREAK": "2.5"}, "SHOP_ESCALATION_FALLBACK_STREAK: expected int"),
    ({"SHOP_ESCALATION_MOOD": "median"}, "SHOP_ESCALATION_MOOD: must be one of"),
    ({"SHOP_ESCALATION_MOOD_ALPHA": "nan"}, "SHOP_ESCALATION_MOOD_ALPHA: expected float"),
    ({"SHOP_ESCALATION_MOOD_TRESHOLD": "-0.4"}, "unknown setting SHOP_ESCALATION_MOOD_TRESHOLD"),
])
def test_bad_threshold_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EscalationThresholds.from_env(env)


# ------------------------------------------------------------------------------------------- mood


def test_mood_functions() -> None:
    turns = [Turn("a", sentiment=-0.8), Turn("b", sentiment=0.0), Turn("c", sentiment=0.4)]
    assert mood_trajectory(turns, EscalationThresholds(mood="ewma", mood_alpha=0.5)) == [-0.4, -0.2, 0.1]
    assert mood_trajectory(turns, EscalationThresholds(mood="mean")) == [-0.8, -0.4, -0.1333]
    assert mood_trajectory(turns, EscalationThresholds(mood="last")) == [-0.8, 0.0, 0.4]
    assert mood_trajectory(turns, EscalationThresholds(mood="leaky", mood_decay=0.5)) == [-0.8, -0.4, 0.2]
    adaptive = EscalationThresholds(mood="adaptive", mood_alpha=0.6, mood_alpha_recover=0.3, mood_alpha_neutral=0.1)
    # neutral text barely moves it, recovery is slower than the fall
    assert mood_trajectory([Turn("x", sentiment=-0.8), Turn("NW-100234", sentiment=0.0),
                            Turn("y", sentiment=0.4)], adaptive) == [-0.48, -0.432, -0.1824]


# ------------------------------------------------------------------------------------------- triggers

T = EscalationThresholds(mood="ewma", mood_alpha=0.5, mood_threshold=-0.3, min_turns=2, very_negative=-0.7,
                         fallback_streak=3, vip_segments=("vip",), vip_mood_threshold=-0.15, vip_min_turns=1)


def test_explicit_request() -> None:
    decision = evaluate([Turn("get me a human", "contact_human_agent", 0.97)], None, T)
    assert decision is not None and decision.reason == "explicit_request" and decision.turn_index == 0


def test_negative_mood_needs_turns_and_a_not_positive_latest_message() -> None:
    first = [Turn("the tracking hasn't moved", "track_order", 0.9, -0.65)]
    assert evaluate(first, None, T) is None  # one message: mood -0.35 but min_turns 2
    second = [*first, Turn("are you kidding", "out_of_scope", 0.8, -0.4)]
    decision = evaluate(second, None, T)
    assert decision is not None and decision.reason == "negative_mood" and decision.mood == -0.3625
    assert evaluate([*first, Turn("hmm ok", "affirm", 0.9, 0.1)], None, T) is None  # positive latest message


def test_one_very_negative_message_about_an_order() -> None:
    decision = evaluate([Turn(ANGRY, "track_order", 0.8)], None, T)
    assert decision is not None and decision.reason == "very_negative_message"
    assert "track_order" in decision.detail
    # as negative, but not about an order or a complaint (no order intent, no order or shop phrase)
    assert score("ugh I hate bots, they are the worst").compound <= -0.7
    assert evaluate([Turn("ugh I hate bots, they are the worst", "bot_challenge", 0.9)], None, T) is None
    # mid-form: the form's intent two messages back makes it about an order
    turns = [Turn("where is my order", "track_order", 0.95), Turn("NW-100234", "inform", 0.9),
             Turn("ugh I hate this, worst service ever", "nlu_fallback", 0.3)]
    decision = evaluate(turns, None, T)
    assert decision is not None and decision.reason == "very_negative_message"


def test_repeated_fallback() -> None:
    fallback = Turn("gift wrap?", "nlu_fallback", 0.3, 0.0)
    low = Turn("wrap it as a present", "search_product", 0.35, 0.0)  # below the low-confidence threshold
    assert is_fallback(low, T) and not is_fallback(Turn("x", "greet", 0.9), T) and not is_fallback(Turn("x"), T)
    assert evaluate([fallback, low], None, T) is None
    decision = evaluate([fallback, low, Turn("can you or not", "out_of_scope", 0.9, 0.0)], None, T)
    assert decision is not None and decision.reason == "repeated_fallback"
    broken = [fallback, Turn("show me scarves", "search_product", 0.9, 0.0), fallback, fallback]
    assert evaluate(broken, None, T) is None  # not in a row


def test_vip_escalates_sooner() -> None:
    turns = [Turn("my order is late, a bit disappointing", "track_order", 0.9, -0.4)]
    assert evaluate(turns, "regular", T) is None
    assert evaluate(turns, None, T) is None
    decision = evaluate(turns, "vip", T)
    assert decision is not None and decision.reason == "vip_negative_mood" and "vip" in decision.detail


def test_reasons_are_the_documented_ones() -> None:
    assert set(REASONS) == {"explicit_request", "negative_mood", "very_negative_message", "repeated_fallback",
                            "vip_negative_mood"}
    assert evaluate([], None, T) is None


# ------------------------------------------------------------------------------------------- tracker events


def _user(text: str, intent: str, confidence: float = 0.9, sentiment: float | None = None,
          segment: str | None = None) -> dict:
    parse: dict = {"intent": {"name": intent, "confidence": confidence}, "text": text}
    if sentiment is not None:
        parse["sentiment"] = {"compound": sentiment, "lexicon": []}
    return {"event": "user", "text": text, "parse_data": parse, "metadata": {"segment": segment} if segment else {}}


def test_events_since_the_latest_handback() -> None:
    listen = {"event": "action", "name": "action_listen"}
    events = [
        listen, _user("hi", "greet", segment="vip"), listen, _user(ANGRY, "track_order"),
        {"event": "action", "name": "action_escalate"}, {"event": "pause"}, _user("hello??", "greet"),
        {"event": "resume"}, listen, _user("thanks, all sorted", "thank", sentiment=0.6),
    ]
    assert escalated_since_handback(events[:5]) and not escalated_since_handback(events)
    assert evaluate_events(events[:5]) is None  # never twice
    turns = turns_from_events(events)
    assert [t.text for t in turns] == ["thanks, all sorted"]
    assert turns[0] == Turn("thanks, all sorted", "thank", 0.9, 0.6)
    assert segment_from_events(events[:4]) == "vip"  # the latest message that carries one
    assert segment_from_events(events) is None  # not since the hand-back
    # the sentiment stored by the Rasa component wins over re-scoring the text
    stored = [listen, _user("NW-100234", "track_order", sentiment=-0.95)]
    decision = evaluate_events(stored, T)
    assert decision is not None and decision.reason == "very_negative_message"
    assert evaluate_events([listen, _user(ANGRY, "track_order")]) is not None
    assert evaluate_events([{"event": "restart"}, listen, _user("hi", "greet")]) is None


# ------------------------------------------------------------------------------------------- bench


def _write(path: Path, dialogues: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    return path


def test_bench_metrics_on_known_dialogues(tmp_path: Path) -> None:
    ok, esc = "ok", "escalate"
    dataset = _write(tmp_path / "d.jsonl", [
        # fires on time (the first labelled turn)
        {"id": "on-time", "turns": [{"role": "user", "text": "where is my order", "label": ok},
                                    {"role": "bot", "text": "What's the order number?"},
                                    {"role": "user", "text": ANGRY, "label": esc}]},
        # labelled one turn before the angry message: fires one turn late
        {"id": "late", "turns": [{"role": "user", "text": "agent", "label": esc},
                                 {"role": "user", "text": ANGRY, "label": esc}]},
        # never fires
        {"id": "missed", "turns": [{"role": "user", "text": "get me a person", "label": esc}]},
        # fires without a label: a false escalation
        {"id": "false", "turns": [{"role": "user", "text": "Never ordering from here again, what a joke!!",
                                   "label": ok}]},
        {"id": "calm", "segment": "regular", "turns": [{"role": "user", "text": "cancel my order", "label": ok}]},
    ])
    result = benchmark(dataset, nlu="none", thresholds=EscalationThresholds())
    assert result["dialogues"] == 5 and result["turns"] == 7 and result["labelled_dialogues"] == 3
    assert result["escalations"] == 3
    assert result["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert (result["turns_late_mean"], result["turns_late_median"], result["on_time"]) == (0.5, 0.5, 0.5)
    assert result["false_escalation_rate"] == 0.5 and result["early"] == 0
    # turns: on-time 1 TN + 1 TP; late 1 FN + 1 TP; missed 1 FN; false 1 FP; calm 1 TN
    assert result["turn_precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["turn_recall"] == pytest.approx(2 / 4, abs=1e-4)


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "d.jsonl:1: not JSON"),
    ('{"id": "a"}', 'd.jsonl:1: expected {"id", "turns": [...]}'),
    ('{"id": "a", "turns": [{"role": "user", "text": "hi"}]}', "d.jsonl:1: turn 0: a user turn needs a label"),
    ('{"id": "a", "turns": [{"role": "agent", "text": "hi"}]}', 'turn 0: expected {"role": "user"|"bot"'),
    ('{"id": "a", "turns": [{"role": "bot", "text": "hi"}]}', "has no user turn"),
])
def test_bad_datasets_are_reported_with_their_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]").replace("|", r"\|")):
        load_dialogues(path)


def test_shipped_dataset_and_its_figures_without_nlu() -> None:
    dialogues = load_dialogues(DATASET)
    labelled = [d for d in dialogues if d.first_label is not None]
    assert len(dialogues) >= 40 and 0 < len(labelled) < len(dialogues)
    result = benchmark(DATASET, nlu="none", thresholds=EscalationThresholds())
    # sentiment alone cannot see explicit requests or fallbacks; these floors guard the lexicon and the mood
    assert result["precision"] >= 0.8
    assert result["recall"] >= 0.55
    assert result["false_escalation_rate"] <= 0.1
    assert result["turns_late_mean"] <= 0.2


def test_bench_command_prints_a_json_line_per_policy(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    done = subprocess.run([sys.executable, "-m", "bot", "bench", "escalation", "--dataset", str(DATASET),
                           "--nlu", "none", "--chart", str(chart)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2  # the escalation model, then the sentiment-only policy
    model, old = (json.loads(line) for line in lines)
    assert (model["policy"], old["policy"]) == ("model", "sentiment_only")
    for result in (model, old):
        assert {"precision", "recall", "f1", "turns_late_mean", "turns_late_median", "false_escalation_rate",
                "dialogues", "turns"} <= set(result)
    assert {"p50_ms", "p95_ms"} <= set(model["message_cost"]) and model["chart"] == str(chart)
    assert chart.read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([sys.executable, "-m", "bot", "bench", "escalation", "--dataset",
                          str(_write(tmp_path / "bad.jsonl", [{"id": "x", "turns": []}])), "--nlu", "none"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "bad.jsonl:1" in bad.stderr and "no user turn" in bad.stderr
    wrong_nlu = subprocess.run([sys.executable, "-m", "bot", "bench", "escalation", "--dataset", str(DATASET),
                                "--nlu", "spacy"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert wrong_nlu.returncode == 2 and "--nlu must be rasa or none" in wrong_nlu.stderr
