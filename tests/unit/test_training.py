"""Scoring on the held-out set, the gate, the registry, one-job-at-a-time and activation rules.

Each test uses its own SQLite database; the full train → evaluate → activate path with the real Rasa
server is in tests/browser/test_console_e2e.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import utcnow
from bot.config import get_settings
from bot.db import get_engine, migrate
from bot.training import activation, gate, jobs, registry
from bot.training.evaluation import Prediction, changed_predictions, score
from bot.training.tables import FAILED, READY, ModelActivation, ModelVersion
from bot.training.workspace import Workspace
from tests.conftest import free_port
from tests.support.local_http import LocalServer, QuietHandler

P = Prediction


def test_scores_are_counted_over_the_test_sets_intents() -> None:
    # greet: 3 true, 2 right; bye: 2 true, 1 right; one greet predicted as nlu_fallback, one bye as greet.
    predictions = [P("hi", "greet", "greet", 0.9), P("hello", "greet", "greet", 0.8),
                   P("yo", "greet", "nlu_fallback", 0.4), P("bye", "bye", "bye", 0.9), P("ciao", "bye", "greet", 0.5)]
    scores = score(predictions)
    assert scores.accuracy == 0.6
    # greet: precision 2/3, recall 2/3 -> F1 0.6667; bye: precision 1/1, recall 1/2 -> F1 0.6667
    assert scores.per_intent["greet"] == {"f1": 0.6667, "precision": 0.6667, "recall": 0.6667, "support": 3}
    assert scores.per_intent["bye"]["f1"] == 0.6667
    assert "nlu_fallback" not in scores.per_intent  # a label the test set lacks adds no zero-F1 intent
    assert scores.macro_f1 == 0.6667
    assert scores.examples == 5


def test_changed_predictions_list_fixes_and_regressions() -> None:
    before = [P("yo", "greet", "nlu_fallback", 0.4), P("hi", "greet", "greet", 0.9), P("ciao", "bye", "bye", 0.8)]
    after = [P("yo", "greet", "greet", 0.7), P("hi", "greet", "greet", 0.9), P("ciao", "bye", "greet", 0.6)]
    changed = changed_predictions(before, after)
    assert changed == [
        {"text": "ciao", "expected": "bye", "before": "bye", "after": "greet", "fixed": False},
        {"text": "yo", "expected": "greet", "before": "nlu_fallback", "after": "greet", "fixed": True},
    ]


LIMITS = gate.GateLimits(max_macro_f1_drop=0.005, max_intent_f1_drop=0.05)


def _metrics(macro: float, **intents: float) -> dict:
    return {"macro_f1": macro, "per_intent": {k: {"f1": v, "support": 10} for k, v in intents.items()}}


def test_gate_passes_an_equal_or_better_model() -> None:
    assert gate.check(_metrics(0.90, a=0.9, b=0.9), _metrics(0.90, a=0.9, b=0.9), LIMITS)["passed"]
    assert gate.check(_metrics(0.95, a=1.0, b=0.9), _metrics(0.90, a=0.9, b=0.9), LIMITS)["passed"]
    # drops exactly at the limits pass: 0.5 points of macro-F1, 5 points of one intent
    assert gate.check(_metrics(0.895, a=0.85, b=0.94), _metrics(0.90, a=0.9, b=0.9), LIMITS)["passed"]


def test_gate_refuses_a_macro_f1_drop_over_half_a_point() -> None:
    verdict = gate.check(_metrics(0.894, a=0.9, b=0.888), _metrics(0.90, a=0.9, b=0.9), LIMITS)
    assert not verdict["passed"]
    assert verdict["reasons"] == ["Macro-F1 falls 0.6 points (90.0 → 89.4); at most 0.5 is allowed."]


def test_gate_refuses_one_intent_falling_more_than_five_points() -> None:
    verdict = gate.check(_metrics(0.90, a=0.84, b=0.96), _metrics(0.90, a=0.9, b=0.9), LIMITS)
    assert not verdict["passed"]
    assert verdict["reasons"] == ["F1 of intent 'a' falls 6.0 points (90.0 → 84.0); at most 5.0 is allowed."]


def test_gate_without_a_baseline_passes_and_says_why() -> None:
    verdict = gate.check(_metrics(0.5, a=0.5), None, LIMITS)
    assert verdict["passed"] and "nothing to compare" in verdict["notes"][0]


def test_sign_test_and_the_messages_behind_an_intents_drop() -> None:
    assert gate.sign_test(0, 0) == 1.0
    assert gate.sign_test(3, 0) == 0.25  # 2 * (1/8)
    assert round(gate.sign_test(6, 0), 4) == 0.0312
    assert round(gate.sign_test(5, 1), 4) == 0.2188  # 2 * (1 + 6) / 64
    changed = [
        {"text": "1", "expected": "a", "before": "a", "after": "b", "fixed": False},  # a: recall lost
        {"text": "2", "expected": "c", "before": "c", "after": "a", "fixed": False},  # a: false positive
        {"text": "3", "expected": "a", "before": "c", "after": "a", "fixed": True},   # a: fixed
        {"text": "4", "expected": "c", "before": "b", "after": "d", "fixed": False},  # not about a
    ]
    assert gate.intent_changes("a", changed) == (2, 1)
    assert gate.intent_changes("b", changed) == (1, 1)


def test_an_intents_drop_refuses_only_beyond_retraining_noise() -> None:
    base, new = _metrics(0.90, a=0.9, b=0.9), _metrics(0.90, a=0.8, b=1.0)
    few = [{"text": str(i), "expected": "a", "before": "a", "after": "b", "fixed": False} for i in range(3)]
    noisy = gate.check(new, base, LIMITS, few)
    assert noisy["passed"] and "3 test messages worse, 0 better, sign test p = 0.25" in noisy["notes"][0]
    many = [{"text": str(i), "expected": "a", "before": "a", "after": "b", "fixed": False} for i in range(6)]
    real = gate.check(new, base, LIMITS, many)
    assert not real["passed"] and "6 test messages worse, 0 better, sign test p = 0.03" in real["reasons"][0]
    literal = gate.check(new, base, gate.GateLimits(intent_alpha=1.0), few)
    assert not literal["passed"]  # alpha 1: any drop over the limit refuses


def _worse(intent: str, count: int) -> list[dict]:
    return [{"text": f"{intent}{i}", "expected": intent, "before": intent, "after": "other", "fixed": False}
            for i in range(count)]


def test_the_verdict_comes_from_the_same_decision_as_each_intent() -> None:
    """Issue 16, item 8: the console said "passed" next to red "refused" intents. One decision object now
    holds the verdict and every intent's status, and ``passed`` is derived from those statuses."""
    base = _metrics(0.90, a=0.9, b=0.9, c=0.9)
    new = _metrics(0.90, a=0.8, b=0.8, c=0.93)
    decision = gate.check(new, base, LIMITS, _worse("a", 3) + _worse("b", 6))
    intents = decision["intents"]
    assert intents["a"]["status"] == gate.NOISE and (intents["a"]["worse"], intents["a"]["better"]) == (3, 0)
    assert intents["b"]["status"] == gate.FAIL and intents["b"]["p"] == 0.0312
    assert intents["c"]["status"] == gate.PASS
    assert decision["verdict"] == "blocked" and not decision["passed"]
    assert decision["summary"].startswith("Blocked: 1 check of the gate fails")
    assert decision["reasons"] == [intents["b"]["text"]] and decision["notes"] == [intents["a"]["text"]]
    # the same drops, all within noise: the verdict passes and names the intents it let through, and why
    noisy = gate.check(new, base, LIMITS, _worse("a", 3) + _worse("b", 3))
    assert noisy["passed"] and noisy["verdict"] == "passed"
    assert {k: v["status"] for k, v in noisy["intents"].items()} == {"a": gate.NOISE, "b": gate.NOISE, "c": gate.PASS}
    assert noisy["summary"] == ("Passed: no check fails. 2 intents (a, b) fall more than 5.0 points, but within "
                                "retraining noise (sign test p > 0.05).")
    for d in (decision, noisy):  # passed <=> nothing in the decision fails
        statuses = [e["status"] for e in d["intents"].values()] + [c["status"] for c in d["checks"]]
        assert d["passed"] == (gate.FAIL not in statuses)


def test_the_rules_state_every_rule_applied_with_its_numbers() -> None:
    base, new = _metrics(0.90, a=0.9), _metrics(0.90, a=0.9)
    rules = " ".join(gate.check(new, base, gate.GateLimits(0.005, 0.05, 0.05, 0.02), [])["rules"])
    for words in ("Macro-F1 on the test set may fall by at most 0.5 points", "F1 falls more than 5.0 points",
                  "exact two-sided sign test", "p ≤ 0.05", "within noise", "informal set may fall by at most 0.5",
                  "off-topic recall by at most 2.0 points", "false rejection may rise by at most 2.0 points"):
        assert words in rules, words
    literal = " ".join(gate.check(new, base, gate.GateLimits(intent_alpha=1.0), [])["rules"])
    assert "no noise test: SHOP_GATE_INTENT_ALPHA is 1" in literal and "sign test" not in literal
    assert gate.check(new, None, LIMITS)["verdict"] == "nothing_to_compare"


def _outcome(name: str, passed: bool, diverged_at: int | None = None, error: str = ""):  # type: ignore[no-untyped-def]
    from bot.convtests.spec import ExpectedTurn, TestOutcome, TurnResult

    expected = ExpectedTurn("where is my parcel", intent="track_order")
    turns = (TurnResult(0, "where is my parcel", expected, "track_order" if passed else "greet", (), None, passed,
                        () if passed else ("intent: expected track_order, got greet",)),)
    return TestOutcome(name, passed, turns if not error else (), diverged_at, error)


def test_a_failed_saved_conversation_test_blocks_the_model_with_its_turn() -> None:
    base, new = _metrics(0.90, a=0.9), _metrics(0.92, a=0.95)  # better on the test set
    good, bad = _outcome("parcel", True), _outcome("parcel again", False, 0)
    passed = gate.check(new, base, LIMITS, [], [good])
    assert passed["passed"] and passed["verdict"] == "passed"
    assert [(e["name"], e["status"]) for e in passed["conversations"]] == [("parcel", gate.PASS)]
    assert any(r.startswith("Every saved conversation test passes: the 1 saved conversation test")
               for r in passed["rules"])
    blocked = gate.check(new, base, LIMITS, [], [good, bad])
    assert not blocked["passed"] and blocked["verdict"] == "blocked"
    assert blocked["reasons"] == ["Saved conversation test 'parcel again' fails at turn 1 (\"where is my parcel\"): "
                                  "intent: expected track_order, got greet."]
    assert {e["name"]: (e["status"], e["diverged_at"]) for e in blocked["conversations"]} == {
        "parcel": (gate.PASS, None), "parcel again": (gate.FAIL, 0)}
    assert next(c for c in blocked["checks"] if c["rule"] == "conversations")["status"] == gate.FAIL
    assert blocked["summary"].startswith("Blocked: 1 check of the gate fails")
    # no baseline to compare with: a failing conversation still blocks; an unplayable one too
    first = gate.check(new, None, LIMITS, None, [_outcome("down", False, 0, error="rasa did not answer turn 1")])
    assert not first["passed"] and first["verdict"] == "blocked"
    assert first["reasons"] == ["Saved conversation test 'down' could not be played: rasa did not answer turn 1"]
    assert gate.check(new, None, LIMITS, None, [good])["verdict"] == "nothing_to_compare"


def test_the_gate_says_when_there_are_no_saved_conversation_tests_or_they_were_skipped() -> None:
    base, new = _metrics(0.90, a=0.9), _metrics(0.90, a=0.9)
    none = gate.check(new, base, LIMITS, [], [])
    assert none["passed"] and gate.NO_CONVERSATIONS in none["rules"] and "no saved conversation tests" in \
        gate.NO_CONVERSATIONS and none["conversations"] == []
    skipped = gate.check(new, base, LIMITS, [], None)
    assert not any("conversation" in r for r in skipped["rules"]) and skipped["conversations"] == []


def test_a_decision_stored_before_the_intents_were_kept_reads_back_the_same() -> None:
    """Registries hold decisions with only passed, reasons and notes: their intents come back from the texts."""
    base, new = _metrics(0.90, a=0.9, b=0.9), _metrics(0.90, a=0.8, b=0.8)
    current = gate.check(new, base, LIMITS, _worse("a", 3) + _worse("b", 6))
    old = gate.stored({k: current[k] for k in ("passed", "reasons", "notes")})
    assert old["verdict"] == "blocked"
    assert {k: v["status"] for k, v in old["intents"].items()} == {"a": gate.NOISE, "b": gate.FAIL}
    assert gate.stored({}) == {}


def test_per_intent_rows_carry_the_gates_decision_and_version_one_gets_its_scores(
        fresh: tuple[str, Workspace], built: Path) -> None:
    url, workspace = fresh
    base = {**_metrics(0.90, a=0.9, b=0.9, c=0.9), "accuracy": 0.91}
    new = {**_metrics(0.90, a=0.8, b=0.8, c=0.93), "accuracy": 0.9}
    changed = _worse("a", 3) + _worse("b", 6)
    with _session(url) as session:
        first = registry.ensure_baseline(session, workspace, utcnow())
        assert first is not None and not first.metrics
        one = registry.summary(first)
        assert one["gate"]["verdict"] == "first_model" and one["gate"]["summary"] == gate.FIRST_MODEL
        # the first training evaluates version 1 as its baseline; version 1 keeps those scores as its own
        assert registry.record_baseline_metrics(session, 1, base, 2)
        session.add(ModelVersion(version=2, state=READY, created_at=utcnow(), created_by_name="t", metrics=new,
                                 baseline_version=1, baseline_metrics=base, changed=changed,
                                 gate=gate.check(new, base, LIMITS, changed)))
        session.commit()
        one = registry.detail(session, registry.get_version(session, 1))  # type: ignore[arg-type]
        assert (one["metrics"]["macro_f1"], one["metrics"]["accuracy"]) == (0.90, 0.91)
        assert one["metrics"]["evaluated_as_baseline_of"] == 2 and len(one["per_intent"]) == 3
        assert one["gate"]["verdict"] == "first_model"
        two = registry.detail(session, registry.get_version(session, 2))  # type: ignore[arg-type]
        rows = {r["intent"]: r for r in two["per_intent"]}
        assert {k: r["gate"] for k, r in rows.items()} == {"a": gate.NOISE, "b": gate.FAIL, "c": gate.PASS}
        assert rows["b"]["gate_text"] == two["gate"]["reasons"][0] and two["gate"]["verdict"] == "blocked"
        assert "intents" not in registry.summary(registry.get_version(session, 2))["gate"]  # type: ignore[arg-type]
        # a version's own evaluation is never replaced by one made of it as a baseline
        assert not registry.record_baseline_metrics(session, 2, base, 3)


def test_a_registry_from_before_gets_version_ones_scores_from_the_training_that_measured_them(
        fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    base = {**_metrics(0.88, a=0.9), "accuracy": 0.9}
    with _session(url) as session:
        _ready(session, workspace, 1, active=True, gate_result={})
        for version in (2, 3):
            session.add(ModelVersion(version=version, state=READY, created_at=utcnow(), created_by_name="t",
                                     metrics=_metrics(0.9, a=0.9), baseline_version=1,
                                     baseline_metrics={**base, "macro_f1": 0.88 + version / 1000}))
        session.commit()
        assert registry.backfill_metrics(session) == 1
        session.commit()
        one = registry.get_version(session, 1)
        assert one is not None and one.metrics["macro_f1"] == 0.883 and one.metrics["evaluated_as_baseline_of"] == 3
        assert registry.backfill_metrics(session) == 0


# --------------------------------------------------------------------------- registry and jobs


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder `make model` writes its archive to (``SHOP_RASA_MODEL_DIR``), with a stand-in archive."""
    folder = tmp_path / "rasa"
    folder.mkdir()
    (folder / "shop.tar.gz").write_bytes(b"archive bytes")
    monkeypatch.setenv("SHOP_RASA_MODEL_DIR", str(folder))
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()  # before monkeypatch restores the variable: the next call reads it again


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[str, Workspace]:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(url)
    return url, Workspace(root=tmp_path / "root", versions_dir=tmp_path / "versions")


def _session(url: str) -> Session:
    return Session(get_engine(url), expire_on_commit=False)


def _ready(session: Session, workspace: Workspace, version: int, *, active: bool = False,
           gate_result: dict | None = None) -> ModelVersion:
    archive = workspace.archive(version)
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(f"archive of version {version}".encode())
    row = ModelVersion(version=version, path=str(archive), state=READY, created_at=utcnow(), created_by_name="t",
                       gate=gate_result or {"passed": True, "reasons": []}, active=active)
    session.add(row)
    session.commit()
    return row


def test_only_one_training_job_at_a_time(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with _session(url) as session:
        first = jobs.start(session, workspace, user_id=None, author="lead", note="first")
        session.commit()
        with pytest.raises(jobs.TrainingBusy) as busy:
            jobs.start(session, workspace, user_id=None, author="lead", note="second")
        assert busy.value.version == first.version
        session.rollback()
    # the database itself refuses a second running row, whoever writes it
    with _session(url) as session:
        session.add(ModelVersion(version=99, state="queued", running=True, created_at=utcnow()))
        with pytest.raises(Exception, match="UNIQUE"):
            session.commit()


def test_a_job_whose_heartbeat_stopped_is_failed_and_frees_the_slot(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with _session(url) as session:
        row = jobs.start(session, workspace, user_id=None, author="lead", now=utcnow() - timedelta(minutes=10))
        session.commit()
        again = jobs.start(session, workspace, user_id=None, author="lead")
        session.commit()
        session.refresh(row)
        assert row.state == FAILED and row.running is None and "stopped unexpectedly" in row.error
        assert again.version == row.version + 1 and again.running


def test_the_make_model_archive_becomes_version_one(fresh: tuple[str, Workspace], built: Path) -> None:
    url, workspace = fresh
    (built / "fingerprint.txt").write_text("abc123\n")
    with _session(url) as session:
        row = registry.ensure_baseline(session, workspace, utcnow())
        session.commit()
        assert row is not None and row.version == 1 and row.active and row.data_fingerprint == "abc123"
        assert Path(row.path).read_bytes() == b"archive bytes" and Path(row.path).parent == workspace.version_dir(1)
        assert registry.ensure_baseline(session, workspace, utcnow()) is None  # only into an empty registry
        kinds = session.scalars(select(ModelActivation.kind)).all()
        assert kinds == ["baseline"]


def test_two_requests_registering_the_baseline_at_once_do_not_fail(
        fresh: tuple[str, Workspace], built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console polls the registry while a lead starts a training: both may see it empty."""
    url, workspace = fresh
    with _session(url) as first, _session(url) as second:
        real_scalar = second.scalar
        stale = [0]  # the second request counted the rows before the first one committed

        def scalar(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
            if stale and "count" in str(statement):
                return stale.pop()
            return real_scalar(statement, *args, **kwargs)

        assert registry.ensure_baseline(first, workspace, utcnow()) is not None
        first.commit()
        monkeypatch.setattr(second, "scalar", scalar)
        assert registry.ensure_baseline(second, workspace, utcnow()) is None
        second.commit()  # the session is still usable: a training can start
        row = jobs.start(second, workspace, user_id=None, author="lead")
        second.commit()
        assert row.version == 2
        assert [v for (v,) in second.execute(select(ModelVersion.version).order_by(ModelVersion.version))] == [1, 2]


def test_activation_rules(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with _session(url) as session:
        _ready(session, workspace, 1, active=True)
        _ready(session, workspace, 2, gate_result={"passed": False, "reasons": ["Macro-F1 falls 2.0 points"]})
        _ready(session, workspace, 3)
        session.add(ModelVersion(version=4, state="training", running=True, created_at=utcnow()))
        session.commit()
        with pytest.raises(activation.ActivationError) as refused:
            activation._plan(session, 2, reason="")
        assert refused.value.code == "gate_failed" and refused.value.reasons == ["Macro-F1 falls 2.0 points"]
        assert activation._plan(session, 2, reason="seasonal wording, checked by hand")[1] == "override"
        blocked = gate.check(_metrics(0.9, a=0.9), _metrics(0.9, a=0.9), LIMITS, [],
                             [_outcome("parcel", False, 0)])
        _ready(session, workspace, 5, gate_result=blocked)  # blocked by a saved conversation test only
        session.commit()
        with pytest.raises(activation.ActivationError) as by_conversation:
            activation._plan(session, 5, reason="")
        assert by_conversation.value.code == "gate_failed" and "'parcel'" in by_conversation.value.reasons[0]
        assert activation._plan(session, 5, reason="the parcel wording changed on purpose")[1] == "override"
        assert activation._plan(session, 3, reason="")[1] == "activate"
        with pytest.raises(activation.ActivationError, match="already active"):
            activation._plan(session, 1, reason="")
        with pytest.raises(activation.ActivationError, match="is training"):
            activation._plan(session, 4, reason="")
        with pytest.raises(activation.ActivationError, match="no model version 7"):
            activation._plan(session, 7, reason="")
        row3 = registry.get_version(session, 3)
        assert row3 is not None
        registry.mark_active(session, row3, kind="activate", author="lead", user_id=None, reason="", now=utcnow())
        session.commit()
        with pytest.raises(activation.ActivationError, match="needs a reason"):
            activation._plan(session, 1, reason="")
        assert activation._plan(session, 1, reason="v3 confuses refunds")[1] == "rollback"


def test_nothing_changes_when_rasa_cannot_load_the_model(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with _session(url) as session:
        _ready(session, workspace, 1, active=True)
        _ready(session, workspace, 2)
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(activation.ActivationError) as failed:
        activation.activate(2, rasa_url=closed, user_id=None, author="lead", database_url=url)
    assert failed.value.code == "rasa_unreachable" and "nothing was changed" in failed.value.message
    with _session(url) as session:
        assert registry.active_version(session).version == 1  # type: ignore[union-attr]
        assert session.scalars(select(ModelActivation)).all() == []


def test_overlay_teaches_new_intents_an_honest_answer(tmp_path: Path) -> None:
    import yaml

    root = tmp_path / "root"
    root.mkdir()
    (root / "domain.yml").write_text('version: "3.1"\nintents:\n  - greet\n')
    workspace = Workspace(root=root, versions_dir=tmp_path / "versions")
    domain, rules = jobs._overlay(workspace, 5, ["gift_wrapping"])
    assert sorted(p.name for p in domain.iterdir()) == ["domain.yml", "lead_intents.yml"]
    extra = yaml.safe_load((domain / "lead_intents.yml").read_text())
    assert extra["intents"] == ["gift_wrapping"] and jobs.NEW_INTENT_REPLY in extra["responses"]
    rule = yaml.safe_load((rules[0] / "lead_intents.yml").read_text())["rules"][0]
    assert rule["steps"] == [{"intent": "gift_wrapping"}, {"action": jobs.NEW_INTENT_REPLY}]
    assert jobs._overlay(workspace, 6, []) == (workspace.domain, [])


def test_progress_lines_are_understood() -> None:
    assert jobs.EPOCHS.search("Epochs:  45%|████      | 36/80 [01:10<01:20, t_loss=3.1]").group(1) == "45"
    found = jobs.COMPONENT.search("INFO rasa.engine.training.hooks - Starting to train component 'DIETClassifier'.")
    assert found and found.group(2) == "DIETClassifier"
    assert os.environ.get("SHOP_MODELS_DIR")  # tests never write versions into the project's models/


class _RecordingRasa(LocalServer):
    """An HTTP server that answers ``PUT /model`` like Rasa (204), or fails (500), and records the bodies:
    stands in for a Rasa replica that is up or broken while activation coordinates several of them."""

    def __init__(self, status: int) -> None:
        import json

        self.loaded: list[str] = []
        owner = self

        class Handler(QuietHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if status < 300:
                    owner.loaded.append(Path(body["model_file"]).name)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)


def test_activation_reaches_every_replica_or_none(fresh: tuple[str, Workspace]) -> None:
    url, workspace = fresh
    with _session(url) as session:
        _ready(session, workspace, 1, active=True)
        _ready(session, workspace, 2)
    good, other, broken = _RecordingRasa(204), _RecordingRasa(204), _RecordingRasa(500)
    try:
        with pytest.raises(activation.ActivationError) as failed:
            activation.activate(2, rasa_url=[good.url, broken.url], user_id=None, author="lead", database_url=url)
        assert "switched back" in failed.value.message
        assert good.loaded == ["shop-v2.tar.gz", "shop-v1.tar.gz"]  # switched, then back to the live model
        with _session(url) as session:
            assert registry.active_version(session).version == 1  # type: ignore[union-attr]
        done = activation.activate(2, rasa_url=[good.url, other.url], user_id=None, author="lead", database_url=url)
        assert done.kind == "activate" and other.loaded == ["shop-v2.tar.gz"]
        active_copy = workspace.versions_dir.parent / registry.ACTIVE_ARCHIVE
        assert active_copy.read_bytes() == workspace.archive(2).read_bytes()  # what a restarted Rasa loads
    finally:
        for server in (good, other, broken):
            server.close()


def test_the_model_fingerprint_ignores_caches_that_tools_write_beside_the_sources(tmp_path: Path) -> None:
    """ruff once wrote ``rasa_addons/.ruff_cache`` during ``make test``, after ``make model``: the model looked
    stale to the tests that check it is current."""
    from bot.training import rasa_model

    (tmp_path / "rasa_addons").mkdir()
    (tmp_path / "config.yml").write_text("language: en\n")
    (tmp_path / "rasa_addons" / "component.py").write_text("X = 1\n")
    before = rasa_model.fingerprint(tmp_path)
    for cache in (".ruff_cache/0.17/123", "__pycache__/component.cpython-310.pyc", ".mypy_cache/3.10/x.json"):
        (tmp_path / "rasa_addons" / cache).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "rasa_addons" / cache).write_text("generated")
    assert rasa_model.fingerprint(tmp_path) == before
    (tmp_path / "rasa_addons" / "component.py").write_text("X = 2\n")
    assert rasa_model.fingerprint(tmp_path) != before
