"""How soon a ticket should be picked up: reason, customer segment, mood and value; then waiting time.

``priority()`` is fixed when the ticket opens (higher = sooner). The queue adds one point for every
``SHOP_HANDOFF_WAIT_MINUTES_PER_POINT`` minutes waited (:func:`sort_key`), so nobody waits forever
behind a stream of VIPs: with the default of 2 minutes, a plain request (about 20 points) catches up
with a fresh VIP's (about 55) after a bit more than an hour.
"""

from __future__ import annotations

import math
from datetime import datetime

REASON_POINTS = {
    # the escalation model's reasons (bot.escalation.decision)
    "gave_up": 35,  # about to leave: pick them up before they do
    "service_complaint": 30,  # says the bot is not helping
    "negative_mood": 30,
    "repeated_request": 25,  # asked the same thing again and again
    "explicit_request": 20,
    "bot_not_understanding": 20,  # the bot keeps failing: annoying, rarely urgent
    # the sentiment-only policy's reasons (tickets opened before the model)
    "very_negative_message": 40,
    "vip_negative_mood": 35,
    "repeated_fallback": 15,
}
SCORE_POINTS = 10  # how sure the escalation model is: up to 10 points for a score of 1.0 past its threshold
SEGMENT_POINTS = {
    "vip": 30, "champions": 20, "big_spender": 15, "loyal": 10, "at_risk": 10, "new": 5,
    "regular": 0, "hibernating": 0, "prospect": 0,
}
MOOD_POINTS = 25  # at mood -1.0; nothing for a neutral or positive mood
VALUE_POINTS = 15  # cap for lifetime value: 5 points per order of magnitude ($9: 5, $99: 10, $999: 15)


def priority(reason: str, segment: str | None, mood: float | None, lifetime_value: float | None,
             score: float | None = None, threshold: float | None = None) -> int:
    """Priority points of a new ticket (15 to 120 with the tables above). ``score`` and ``threshold``: the
    escalation model's, when it decided; how far the score went past the threshold adds up to 10 points."""
    points = REASON_POINTS.get(reason, REASON_POINTS["explicit_request"])
    if score is not None and threshold is not None and math.isfinite(score) and math.isfinite(threshold) \
            and 0.0 < threshold < 1.0 and score > threshold:  # a rule's decisions (threshold 0) add nothing
        points += round(SCORE_POINTS * min(1.0, (score - threshold) / (1.0 - threshold)))
    points += SEGMENT_POINTS.get(segment or "", 0)
    if mood is not None and math.isfinite(mood) and mood < 0:
        points += round(min(1.0, -mood) * MOOD_POINTS)
    if lifetime_value and math.isfinite(lifetime_value) and lifetime_value > 0:
        points += min(VALUE_POINTS, int(5 * math.log10(1 + lifetime_value)))
    return points


def waited_minutes(created_at: datetime, now: datetime) -> float:
    return max(0.0, (now - created_at).total_seconds() / 60)


def sort_key(priority_points: int, created_at: datetime, now: datetime, minutes_per_point: float) -> float:
    """The queue's order (descending): priority plus one point per ``minutes_per_point`` waited."""
    return priority_points + waited_minutes(created_at, now) / minutes_per_point
