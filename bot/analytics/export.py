"""One analytics figure as CSV (a header row, then one row per day, bin, intent, reason or step)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from bot.analytics.metrics import FIGURES
from bot.privacy.redact import redact

# Spreadsheet programs run cells that start with these as formulas.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class UnknownFigure(KeyError):
    def __init__(self, figure: str) -> None:
        super().__init__(figure)
        self.figure = figure


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        value = redact(value)  # personal data never leaves in a spreadsheet
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def rows(figure: str, report: dict[str, Any]) -> tuple[Sequence[str], Iterable[Sequence[Any]]]:
    """``(header, rows)`` of ``figure`` from a report made by ``metrics.compute_all``."""
    data = report.get(figure)
    if figure not in FIGURES or not isinstance(data, dict):
        raise UnknownFigure(figure)
    if figure == "conversations_per_day":
        return ("date", "conversations"), ((d["date"], d["conversations"]) for d in data["days"])
    if figure == "containment":
        return (("conversations", "contained", "handed_off", "containment_rate"),
                [(data["conversations"], data["contained"], data["handed_off"], data["rate"])])
    if figure == "escalation":
        return (("reason", "handed_off_conversations", "conversations", "rate"),
                [*((r["reason"], r["conversations"], data["conversations"], r["rate"]) for r in data["by_reason"]),
                 ("all reasons", data["handed_off"], data["conversations"], data["rate"])])
    if figure == "fallback":
        return (("date", "fallback_messages", "typed_messages", "fallback_rate"),
                [*((d["date"], d["fallback_messages"], d["typed_messages"], d["rate"]) for d in data["days"]),
                 ("all days", data["fallback_messages"], data["typed_messages"], data["rate"])])
    if figure == "top_intents":
        return ("intent", "messages", "share_of_typed_messages"), ((i["intent"], i["count"], i["share"])
                                                                    for i in data["intents"])
    if figure == "confidence":  # bins [from, to); the last one includes 1.0
        return (("confidence_from", "confidence_to", "messages", "share"),
                ((b["low"], b["high"], b["count"], b["share"]) for b in data["bins"]))
    if figure == "funnel":
        return (("step", "events", "conversations", "rate_from_previous_step"),
                [("searches", data["searches"], data["conversations"]["searched"], None),
                 ("card_clicks", data["card_clicks"], data["conversations"]["clicked"], data["click_rate"]),
                 ("add_to_carts", data["add_to_carts"], data["conversations"]["added"], data["add_rate"])])
    if figure == "satisfaction":
        return (("rating", "rated_chats", "average_rating"),
                [*((r["rating"], r["count"], None) for r in data["by_rating"]),
                 ("all", data["rated_chats"], data["average"])])
    # sentiment: the three classes, then the histogram (bins [from, to); the last one includes 1.0)
    return (("group", "label", "from", "to", "messages", "share"),
            [*(("class", c["label"], "", "", c["count"], c["share"]) for c in data["classes"]),
             ("class", "unscored", "", "", data["unscored"], ""),
             *(("histogram", f"bin {i}", b["low"], b["high"], b["count"], b["share"])
               for i, b in enumerate(data["bins"], start=1))])


def to_csv(figure: str, report: dict[str, Any]) -> str:
    header, body = rows(figure, report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in body:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def filename(figure: str, report: dict[str, Any]) -> str:
    return f"analytics-{figure}-{report['since']}-to-{report['until']}.csv"
