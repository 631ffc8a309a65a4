"""The two clocks a time limit counts (DESIGN.md, deadlines): each rule names one.

- ``natural``: a clock that never stops (emergencies; the default for red).
- ``working``: office hours on working days only (the default for yellow and blue). Which days are working
  days is the calendar's business (``app.cases.deadlines.Calendar``: Monday to Friday, unless the State
  Council's notice says otherwise); office hours come from the configuration (``OFFICE_HOURS``, by default
  08:30-12:00 and 14:00-17:30 China Standard Time, and ``OFFICE_HOURS_SEASONS``, seasonal timetables by date
  range such as a summer timetable, 夏季作息).

Both clocks answer the same two questions: how many of their seconds lie between two instants, and when a
number of their seconds after an instant have passed (the earliest such instant).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

CHINA = timezone(timedelta(hours=8))
CLOCKS = ("natural", "working")
CLOCK_NAMES_ZH = {"natural": "自然时间", "working": "工作时间"}
DEFAULT_OFFICE_HOURS = "08:30-12:00,14:00-17:30"
# A limit never spans more than this many calendar days; guards a loop against a calendar with no working day.
MAX_SCAN_DAYS = 3 * 366

Periods = tuple[tuple[time, time], ...]

_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_SEASON = re.compile(r"^\s*(\d{2})-(\d{2})\s*\.\.\s*(\d{2})-(\d{2})\s*=(.*)$")


def _parse_periods(text: str) -> Periods:
    """``08:30-12:00,14:00-17:30`` → ((08:30, 12:00), (14:00, 17:30)); ordered, not overlapping, within a day
    (``24:00`` is the day's end). Raises ValueError."""
    periods = []
    for part in text.split(","):
        m = _PERIOD.match(part)
        if not m:
            raise ValueError(f"office hours: expected HH:MM-HH:MM, got {part.strip()!r}")
        h1, m1, h2, m2 = map(int, m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise ValueError(f"office hours: not a time of day in {part.strip()!r}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise ValueError(f"office hours: {part.strip()!r} ends before it starts")
        if periods and start < periods[-1][1]:
            raise ValueError(f"office hours: {part.strip()!r} overlaps or precedes the period before it")
        periods.append((start, end))
    return tuple((time(s // 60, s % 60), time.max if e == 24 * 60 else time(e // 60, e % 60)) for s, e in periods)


@dataclass(frozen=True)
class Season:
    """A timetable for the days from ``start`` to ``end`` (month, day; both included) of every year; a range
    whose end comes before its start runs over the new year (a winter timetable)."""

    start: tuple[int, int]
    end: tuple[int, int]
    periods: Periods

    def holds(self, day: date) -> bool:
        md = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


class OfficeHours:
    """The office hours of each day: a default timetable, and seasons that replace it on their dates."""

    def __init__(self, default: Periods, seasons: tuple[Season, ...] = ()):
        self.default = default
        self.seasons = seasons

    @classmethod
    def parse(cls, default: str = DEFAULT_OFFICE_HOURS, seasons: str = "") -> OfficeHours:
        """From the configuration's text: ``OFFICE_HOURS`` = ``08:30-12:00,14:00-17:30``; ``OFFICE_HOURS_SEASONS``
        = ``05-01..09-30=08:30-12:00,14:30-18:00`` (several separated by ``;``; the first that holds a day
        wins). Raises ValueError naming what is wrong."""
        parsed = []
        for entry in (seasons or "").split(";"):
            if not entry.strip():
                continue
            m = _SEASON.match(entry)
            if not m:
                raise ValueError(f"office hours seasons: expected MM-DD..MM-DD=HH:MM-HH:MM,…, got {entry.strip()!r}")
            start, end = (int(m[1]), int(m[2])), (int(m[3]), int(m[4]))
            for month, day in (start, end):
                try:
                    date(2024, month, day)  # a leap year: 02-29 is a valid bound
                except ValueError as exc:
                    raise ValueError(f"office hours seasons: no such day {month:02d}-{day:02d}") from exc
            parsed.append(Season(start, end, _parse_periods(m[5])))
        return cls(_parse_periods(default or DEFAULT_OFFICE_HOURS), tuple(parsed))

    def periods(self, day: date) -> Periods:
        for season in self.seasons:
            if season.holds(day):
                return season.periods
        return self.default

    def describe(self) -> dict:
        """The timetables as the API shows them."""
        def text(periods: Periods) -> list[str]:
            return [f"{a:%H:%M}-{'24:00' if b == time.max else f'{b:%H:%M}'}" for a, b in periods]

        return {"timezone": "Asia/Shanghai", "default": text(self.default),
                "seasons": [{"from": f"{s.start[0]:02d}-{s.start[1]:02d}", "to": f"{s.end[0]:02d}-{s.end[1]:02d}",
                             "periods": text(s.periods)} for s in self.seasons]}


@lru_cache(maxsize=8)
def office_hours(default: str, seasons: str) -> OfficeHours:
    """Parsed once per configuration."""
    return OfficeHours.parse(default, seasons)


class NaturalClock:
    """A clock that never stops."""

    name = "natural"

    def seconds(self, start: datetime, end: datetime) -> float:
        return max(0.0, (end - start).total_seconds())

    def add(self, start: datetime, seconds: float) -> datetime:
        return (start + timedelta(seconds=max(0.0, seconds))).astimezone(timezone.utc)


class WorkingClock:
    """Office hours on working days, in China Standard Time."""

    name = "working"

    def __init__(self, is_workday: Callable[[date], bool], hours: OfficeHours):
        self.is_workday = is_workday
        self.hours = hours

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's office hours as instants (none on a day off)."""
        if not self.is_workday(day):
            return []
        return [(datetime.combine(day, a, CHINA),
                 datetime.combine(day + timedelta(days=1), time(0), CHINA) if b == time.max
                 else datetime.combine(day, b, CHINA)) for a, b in self.hours.periods(day)]

    def seconds(self, start: datetime, end: datetime) -> float:
        """Office seconds between two instants."""
        if end <= start:
            return 0.0
        start, end = start.astimezone(CHINA), end.astimezone(CHINA)
        total = timedelta(0)
        day = start.date()
        while day <= end.date():
            for lo, hi in self.intervals(day):
                lo, hi = max(lo, start), min(hi, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds()

    def add(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant when ``seconds`` office seconds after ``start`` have passed. Raises ValueError
        when the calendar has no office hours for that long (MAX_SCAN_DAYS)."""
        current = start.astimezone(CHINA)
        if seconds <= 0:
            return current.astimezone(timezone.utc)
        # A positive limit ends inside office hours, however small: never round it away to "now".
        remaining = max(timedelta(seconds=seconds), timedelta(microseconds=1))
        day = current.date()
        for _ in range(MAX_SCAN_DAYS):
            for lo, hi in self.intervals(day):
                lo = max(lo, current)
                if hi <= lo:
                    continue
                if remaining <= hi - lo:
                    return (lo + remaining).astimezone(timezone.utc)
                remaining -= hi - lo
            day += timedelta(days=1)
        raise ValueError("deadline beyond the calendar's reach")
