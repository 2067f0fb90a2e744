"""Topics: clustering quality on a fixed labelled subset of our test messages, naming, incremental
assignment, storage and the console's facts on the real test database, and the recluster command on a
small tracker store in Rasa's format (a temporary SQLite file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from bot.db import migrate, session_scope
from bot.rasa_events import EVENTS, create_events_table, tracker_engine
from bot.topics.assign import assign_new
from bot.topics.clustering import METHOD_DIRECT, METHOD_SAMPLED, NOISE, ClusterParams, cluster
from bot.topics.embedding import embed
from bot.topics.labelled import load
from bot.topics.naming import distinctive_words, topic_names
from bot.topics.recluster import recluster
from bot.topics.summaries import topic_summaries
from bot.topics.tables import SCOPE_ALL, SCOPE_FALLBACK, Topic, TopicMember, TopicRun

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ("track_order", "cancel_order", "add_to_cart", "get_invoice", "newsletter_subscription",
          "check_payment_methods", "forget_my_data", "contact_human_agent", "delivery_options", "off_topic")
ARI_FLOOR, NMI_FLOOR = 0.62, 0.75  # measured on this subset (2026-12-05): ARI 0.697, NMI 0.813, noise 11.5 %
THRESHOLD = 0.5
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _subset() -> tuple[list[str], list[str]]:
    data = load()
    pairs = [(t, label) for t, label in zip(data.texts, data.labels, strict=True) if label in SUBSET]
    per_label: dict[str, int] = {}
    kept = []
    for text, label in pairs:  # at most 40 each, so off_topic does not dominate
        if per_label.get(label, 0) < 40:
            per_label[label] = per_label.get(label, 0) + 1
            kept.append((text, label))
    return [t for t, _ in kept], [label for _, label in kept]


def test_clustering_on_a_labelled_subset_reaches_the_ari_and_nmi_floor() -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    texts, labels = _subset()
    result = cluster(embed(texts))
    ari = adjusted_rand_score(labels, result.labels)
    nmi = normalized_mutual_info_score(labels, result.labels)
    assert ari >= ARI_FLOOR and nmi >= NMI_FLOOR, (ari, nmi)
    assert (result.labels == NOISE).mean() < 0.4
    assert result.topics >= 5 and np.all(result.radii > 0)


def test_large_path_just_above_the_switch_over_keeps_the_small_paths_topics() -> None:
    """Lowering the switch-over to 380 makes these 400 messages take the large path (a 380-message sample
    clustered directly, the other 20 assigned to the nearest topic within its radius): its topics agree with
    the small path's (ARI 0.96 at seed 0; 0.86 to 0.96 over seeds 0 to 5). The earlier two-stage path
    (k-means micro-clusters, agglomerative on their centres) agreed only to 0.685."""
    from sklearn.metrics import adjusted_rand_score

    texts, labels = _subset()
    vectors = embed(texts)
    small = cluster(vectors)
    large = cluster(vectors, ClusterParams(direct_limit=380, sample_size=380))
    assert small.method == METHOD_DIRECT and large.method == METHOD_SAMPLED
    assert adjusted_rand_score(small.labels, large.labels) >= 0.85
    assert adjusted_rand_score(labels, large.labels) >= ARI_FLOOR
    assert np.all(large.radii > 0) and large.labels.max() == large.topics - 1


def test_naming_picks_each_topics_distinctive_words() -> None:
    texts = ["where is my parcel", "my parcel has not arrived", "parcel tracking please", "track my parcel",
             "refund for my jacket", "i want a refund", "refund the money", "how do refunds work",
             "noise here"]
    labels = [0, 0, 0, 0, 1, 1, 1, 1, -1]
    words = distinctive_words(texts, labels)
    assert words[0][0] == "parcel" and words[1][0] == "refund"
    assert "my" not in words[0]  # stop words removed
    names = topic_names(texts, labels)
    assert "parcel" in names[0] and "refund" in names[1] and set(names) == {0, 1}


def _event(sender: str, text: str, intent: str, confidence: float, at: datetime) -> dict[str, Any]:
    ts = at.timestamp()
    parse = {"text": text, "intent": {"name": intent, "confidence": confidence},
             "intent_ranking": [{"name": intent, "confidence": confidence}]}
    data = {"event": "user", "timestamp": ts, "text": text, "parse_data": parse}
    return {"sender_id": sender, "type_name": "user", "timestamp": ts, "intent_name": intent,
            "action_name": None, "data": json.dumps(data)}


def _handoff(sender: str, at: datetime) -> dict[str, Any]:
    ts = at.timestamp()
    return {"sender_id": sender, "type_name": "action", "timestamp": ts, "intent_name": None,
            "action_name": "action_escalate", "data": json.dumps({"event": "action", "timestamp": ts,
                                                                  "name": "action_escalate"})}


def write_rows(url: str, rows: list[dict[str, Any]]) -> None:
    create_events_table(url)
    with tracker_engine(url).begin() as conn:
        conn.execute(EVENTS.insert(), rows)


def _tracker(tmp_path: Path) -> str:
    """Three subjects, 12 messages each, one conversation per message; the invoice ones handed over."""
    url = f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    data = load()
    rows = []
    n = 0
    for intent, confidence in (("track_order", 0.9), ("cancel_order", 0.3), ("get_invoice", 0.8)):
        texts = [t for t, label in zip(data.texts, data.labels, strict=True) if label == intent][:12]
        for i, text in enumerate(texts):
            n += 1
            at = NOW - timedelta(days=i % 3)
            rows.append(_event(f"c{n}", text, intent, confidence, at))
            if intent == "get_invoice":
                rows.append(_handoff(f"c{n}", at + timedelta(seconds=5)))
    write_rows(url, rows)
    return url


def test_recluster_stores_topics_and_new_messages_join_only_when_close(tmp_path: Path) -> None:
    migrate()
    url = _tracker(tmp_path)
    with session_scope() as session:
        result = recluster(session, url, SCOPE_ALL, THRESHOLD)
    assert result.messages == 36 and result.topics >= 2
    with session_scope() as session:  # storage round trip
        run = session.get(TopicRun, result.run_id)
        assert run is not None and run.scope == SCOPE_ALL and run.message_count == 36
        topics = list(session.scalars(select(Topic).where(Topic.run_id == run.id)))
        assert sum(t.size for t in topics) == 36 - run.noise_count
        assert all(len(t.representatives) == min(5, t.size) and len(t.centroid) == 384 for t in topics)
        members = list(session.scalars(select(TopicMember).where(TopicMember.topic_id.in_([t.id for t in topics]))))
        assert len(members) == 36 - run.noise_count and {m.day for m in members} <= {
            (NOW - timedelta(days=d)).date() for d in range(3)}
        summaries = topic_summaries(session, url, SCOPE_ALL, today=NOW.date())
    invoice = next(s for s in summaries if "invoice" in s.name)
    assert invoice.escalation_rate == 1.0 and invoice.containment_rate == 0.0
    assert set(invoice.intents_today) == {"get_invoice"} and sum(n for _, n in invoice.per_day) == invoice.size
    others = [s for s in summaries if s is not invoice]
    assert others and all(s.escalation_rate == 0.0 for s in others)

    write_rows(url, [_event("late-1", "can I get an invoice for my order please", "get_invoice", 0.9, NOW),
                     _event("late-2", "what is the capital city of peru", "out_of_scope", 0.9, NOW)])
    with session_scope() as session:
        assigned = assign_new(session, url, SCOPE_ALL, THRESHOLD)
    assert (assigned.messages, assigned.assigned) == (2, 1)
    with session_scope() as session:
        joined = session.scalars(select(TopicMember).where(TopicMember.conversation_id.in_(("late-1", "late-2"))))
        rows = list(joined)
        assert [r.conversation_id for r in rows] == ["late-1"] and rows[0].incremental
        topic = session.get(Topic, rows[0].topic_id)
        assert topic is not None and "invoice" in topic.name
    with session_scope() as session:  # nothing new: nothing joins twice
        assert assign_new(session, url, SCOPE_ALL, THRESHOLD).messages == 0


def test_fallback_scope_holds_only_low_confidence_and_fallback_messages(tmp_path: Path) -> None:
    migrate()
    url = _tracker(tmp_path)
    with session_scope() as session:
        result = recluster(session, url, SCOPE_FALLBACK, THRESHOLD)
        assert result.messages == 12  # only cancel_order came with confidence 0.3
        intents = set(session.scalars(select(TopicMember.intent).join(Topic).where(Topic.run_id == result.run_id)))
        assert intents <= {"cancel_order"}


def test_cli_recluster_then_assign_on_a_small_tracker(tmp_path: Path) -> None:
    url = _tracker(tmp_path)
    env = {**os.environ, "SHOP_TRACKER_STORE_URL": url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "topics", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    bad = cli("recluster", "--scope", "everything")
    assert bad.returncode == 2 and "scope must be one of" in bad.stderr
    done = cli("recluster", "--scope", "all")
    assert done.returncode == 0, done.stderr
    assert "topics all: 36 messages" in done.stdout
    with session_scope() as session:
        run = session.scalars(select(TopicRun).where(TopicRun.scope == SCOPE_ALL)).one()
        assert run.message_count == 36
    added = cli("assign", "--scope", "all")
    assert added.returncode == 0 and "0 new messages" in added.stdout, added.stderr
