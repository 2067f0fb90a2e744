"""Support hours: when people can answer in the chat, from ``shop.support`` in the policy file.

``schedule`` maps each weekday to ``"HH:MM-HH:MM"`` ranges (comma-separated; an end at or before
the start runs past midnight; ``24:00`` is the end of the day) or ``closed``, in the support
``timezone`` (default ``shop.timezone``); ``closed_dates`` lists days off. Callers pass and get
naive UTC datetimes; the local time zone (with its daylight-saving changes) is applied here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.clock import utcnow
from bot.config import get_settings
from bot.knowledge.shop_policy_file import ShopPolicy

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
LOOKAHEAD_DAYS = 400  # closed dates can make the next opening far away; never loop forever


class HoursError(ValueError):
    """The support schedule in the policy file cannot be read."""


@dataclass(frozen=True)
class Range:
    start: time
    minutes: int  # length; may run past midnight



def _clock(hours: str, minutes: str, where: str) -> int:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise HoursError(f"{where}: {hours}:{minutes} is not a time of day")
    return h * 60 + m


def parse_day(value: Any, where: str) -> tuple[Range, ...]:
    """``"08:00-20:00"``, ``"08:00-12:00, 13:00-17:00"``, ``"closed"`` (or empty) -> ranges."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "closed")) or value is False:
        return ()
    if not isinstance(value, str):
        raise HoursError(f"{where}: expected \"HH:MM-HH:MM\" or \"closed\", got {value!r}")
    ranges = []
    for part in value.split(","):
        match = _RANGE.match(part)
        if not match:
            raise HoursError(f"{where}: {part.strip()!r} is not a range like \"08:00-20:00\"")
        start = _clock(match[1], match[2], where)
        end = _clock(match[3], match[4], where)
        if start == 24 * 60:
            raise HoursError(f"{where}: a range cannot start at 24:00")
        length = end - start if end > start else end + 24 * 60 - start
        ranges.append(Range(time(start // 60, start % 60), length))
    return tuple(ranges)


@dataclass(frozen=True)
class SupportHours:
    zone: ZoneInfo
    weekly: tuple[tuple[Range, ...], ...]  # Monday first
    closed_dates: frozenset[date]
    text: str  # the human sentence from the policy file
    zone_label: str

    @classmethod
    def from_policy(cls, data: dict[str, Any]) -> SupportHours:
        """From the whole policy mapping (``shop.support.schedule``, ``timezone``, ``closed_dates``)."""
        shop = data.get("shop") or {}
        support = shop.get("support") or {}
        schedule = support.get("schedule")
        if not isinstance(schedule, dict):
            raise HoursError("shop.support.schedule: missing; give the hours of each day (monday: \"08:00-20:00\")")
        unknown = set(schedule) - set(DAYS)
        if unknown:
            raise HoursError(f"shop.support.schedule: unknown days {sorted(unknown)} (use {', '.join(DAYS)})")
        weekly = tuple(parse_day(schedule.get(day), f"shop.support.schedule.{day}") for day in DAYS)
        zone_name = support.get("timezone") or shop.get("timezone") or "UTC"
        try:
            zone = ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise HoursError(f"shop.support.timezone: unknown time zone {zone_name!r}") from exc
        closed = set()
        for raw in support.get("closed_dates") or []:
            try:
                closed.add(raw if isinstance(raw, date) else date.fromisoformat(str(raw)))
            except ValueError as exc:
                raise HoursError(f"shop.support.closed_dates: {raw!r} is not a date like 2026-12-25") from exc
        return cls(zone, weekly, frozenset(closed), str(support.get("hours") or ""),
                   str(support.get("timezone_label") or zone_name))

    # ----------------------------------------------------------------- open intervals

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals that start on local ``day``, as naive UTC."""
        if day in self.closed_dates:
            return []
        out = []
        for r in self.weekly[day.weekday()]:
            start = datetime.combine(day, r.start, tzinfo=self.zone)
            end_wall = datetime.combine(day, r.start) + timedelta(minutes=r.minutes)
            end = end_wall.replace(tzinfo=self.zone)
            out.append((start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)))
        return out

    def _local_day(self, now: datetime) -> date:
        return now.replace(tzinfo=UTC).astimezone(self.zone).date()

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        today = self._local_day(now)
        return any(start <= now < end for day in (today - timedelta(days=1), today)
                   for start, end in self._intervals(day))

    def next_opening(self, now: datetime | None = None) -> datetime | None:
        """``now`` when open, else when the team is next available (naive UTC); None if never."""
        now = now or utcnow()
        if self.is_open(now):
            return now
        today = self._local_day(now)
        for offset in range(LOOKAHEAD_DAYS):
            for start, _end in sorted(self._intervals(today + timedelta(days=offset))):
                if start > now:
                    return start
        return None

    def local(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC).astimezone(self.zone)

    def next_opening_text(self, now: datetime | None = None) -> str:
        """"now", "today at 14:00", "tomorrow at 8:00", "on Monday at 8:00", "on December 27 at 8:00"."""
        now = now or utcnow()
        opening = self.next_opening(now)
        if opening is None:
            return "as soon as possible"
        if opening == now:
            return "now"
        when = self.local(opening)
        days = (when.date() - self._local_day(now)).days
        clock = f"{when.hour}:{when.minute:02d}"
        if days == 0:
            day = "today"
        elif days == 1:
            day = "tomorrow"
        elif days < 7:
            day = f"on {when.strftime('%A')}"
        else:
            day = f"on {when.strftime('%B')} {when.day}"
        return f"{day} at {clock} ({self.zone_label})"

    def describe(self) -> str:
        """The weekly schedule in words, days with the same hours grouped:
        "Monday to Friday 8:00 to 20:00, Saturday 9:00 to 14:00"."""
        def hours(ranges: tuple[Range, ...]) -> str:
            parts = []
            for r in ranges:
                end = (r.start.hour * 60 + r.start.minute + r.minutes) % (24 * 60)
                parts.append(f"{r.start.hour}:{r.start.minute:02d} to {end // 60}:{end % 60:02d}")
            return " and ".join(parts)

        groups: list[tuple[int, int, tuple[Range, ...]]] = []
        for i, ranges in enumerate(self.weekly):
            if groups and groups[-1][2] == ranges and groups[-1][1] == i - 1:
                groups[-1] = (groups[-1][0], i, ranges)
            else:
                groups.append((i, i, ranges))
        words = []
        for first, last, ranges in groups:
            if not ranges:
                continue
            name = DAYS[first].capitalize()
            if last > first:
                name += f" {'and' if last == first + 1 else 'to'} {DAYS[last].capitalize()}"
            words.append(f"{name} {hours(ranges)}")
        return ", ".join(words) if words else "no regular hours"


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> SupportHours:
    return SupportHours.from_policy(ShopPolicy.load(Path(path)).data)


def support_hours() -> SupportHours:
    """The hours of the configured policy file (re-read when the file changes)."""
    path = get_settings().policy_file
    return _cached(str(path), path.stat().st_mtime)


def is_open(now: datetime | None = None) -> bool:
    """Whether people can answer now: ``SHOP_HANDOFF_ALWAYS_OPEN`` or within the support hours."""
    return get_settings().handoff_always_open or support_hours().is_open(now)


def next_opening(now: datetime | None = None) -> datetime | None:
    now = now or utcnow()
    return now if get_settings().handoff_always_open else support_hours().next_opening(now)


def hours_text() -> str:
    """The hours in words for shoppers, as the policy file writes them."""
    if get_settings().handoff_always_open:
        return "around the clock"
    hours = support_hours()
    return hours.text or f"{hours.describe()} ({hours.zone_label})"
