"""The two clocks against an independent computation, and their laws.

The oracle steps minute by minute through the days, asking the ``chinese_calendar`` package itself (not
the database) whether each day is a working day and the office hours written out here whether each minute
is in them. The clocks under test read the calendar the first ``db upgrade`` loaded into the database.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from functools import cache

import chinese_calendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.cases.clock import CHINA, OfficeHours
from app.cases.deadlines import Calendar
from app.cases.official_calendar import official_days

UTC = timezone.utc
MORNING = (8 * 60 + 30, 12 * 60)
AFTERNOON = (14 * 60, 17 * 60 + 30)


@cache
def workday(day: date) -> bool:
    return chinese_calendar.is_workday(day)


def office_minute(moment: datetime) -> bool:
    """Is the minute that starts at ``moment`` (China time) one of office hours on a working day?"""
    local = moment.astimezone(CHINA)
    m = local.hour * 60 + local.minute
    return any(a <= m < b for a, b in (MORNING, AFTERNOON)) and workday(local.date())


def oracle_deadline(start: datetime, minutes: int) -> datetime:
    """Step minute by minute until ``minutes`` office minutes have passed (start on a whole minute)."""
    t, left = start, minutes
    while left:
        if office_minute(t):
            left -= 1
        t += timedelta(minutes=1)
    # the deadline is the end of the last counted minute, not the next one's start after a break
    t -= timedelta(minutes=1)
    while not office_minute(t):
        t -= timedelta(minutes=1)
    return (t + timedelta(minutes=1)).astimezone(UTC)


def oracle_minutes(start: datetime, end: datetime) -> int:
    t, n = start, 0
    while t < end:
        n += office_minute(t)
        t += timedelta(minutes=1)
    return n


# The windows around the holidays: 2025 Spring Festival, National Day 2025, and the holidays of 2026.
WINDOWS = {
    "spring_festival_2025": (date(2025, 1, 20), date(2025, 2, 12)),
    "national_day_2025": (date(2025, 9, 24), date(2025, 10, 14)),
    "new_year_2026": (date(2025, 12, 29), date(2026, 1, 6)),
    "spring_festival_2026": (date(2026, 2, 9), date(2026, 3, 2)),
    "labour_day_2026": (date(2026, 4, 28), date(2026, 5, 11)),
    "mid_autumn_national_day_2026": (date(2026, 9, 17), date(2026, 10, 12)),
}
# The default working-time limits: yellow and blue, to accept and to close (minutes of office time).
LIMITS = (8 * 60, 24 * 60, 72 * 60, 7 * 24 * 60)


def _starts(first: date, last: date, n: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    span = int((datetime.combine(last, time(0)) - datetime.combine(first, time(0))).total_seconds() // 60)
    picks = [datetime.combine(first, time(0), CHINA) + timedelta(minutes=rng.randrange(span)) for _ in range(n)]
    # and the edges people argue about: the last minutes before a holiday, a make-up day's opening
    return picks + [datetime.combine(first, time(17, 29), CHINA), datetime.combine(first, time(8, 30), CHINA)]


@pytest.fixture
def calendar(app_ctx):
    return Calendar.load()


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_deadlines_match_the_minute_by_minute_count(calendar, window):
    first, last = WINDOWS[window]
    for i, start in enumerate(_starts(first, last, 6, seed=hash(window) % 1000)):
        minutes = LIMITS[i % len(LIMITS)]
        expected = oracle_deadline(start, minutes)
        assert calendar.working.add(start, minutes * 60) == expected, (window, start, minutes)
        assert calendar.working.seconds(start, expected) == minutes * 60
        assert calendar.natural.add(start, minutes * 60) == (start + timedelta(minutes=minutes)).astimezone(UTC)


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_elapsed_working_time_matches_the_minute_by_minute_count(calendar, window):
    first, last = WINDOWS[window]
    rng = random.Random(7)
    starts = _starts(first, last, 5, seed=11)
    for start in starts:
        end = start + timedelta(minutes=rng.randrange(1, 14 * 24 * 60))
        assert calendar.working.seconds(start, end) == oracle_minutes(start, end) * 60, (start, end)


def test_what_the_old_clock_got_wrong():
    """Monday to Friday with 24-hour days against the notice and office hours, 2025-2026."""
    known = {d: w for d, w, _ in official_days()}
    wrong = [d for d in (date(2025, 1, 1) + timedelta(days=i) for i in range(730))
             if known.get(d, d.weekday() < 5) != (d.weekday() < 5)]
    assert len(wrong) >= 40  # holidays on weekdays and make-up weekends the weekday rule gets wrong
    # a yellow case reported at 17:00 on the eve of the National Day week: half an hour that day, 7 h on
    # Thursday Oct 8, half an hour on Friday (the old clock said Oct 1, 01:00)
    cal = Calendar(known)
    assert cal.working.add(datetime(2026, 9, 30, 17, tzinfo=CHINA), 8 * 3600) == \
        datetime(2026, 10, 9, 9, 0, tzinfo=CHINA).astimezone(UTC)


def test_summer_timetable_by_date_range():
    hours = OfficeHours.parse("08:30-12:00,14:00-17:30", "05-01..09-30=08:30-12:00,14:30-18:00")
    cal = Calendar({}, hours)
    # Thursday 2026-04-30: the ordinary afternoon; Monday 2026-05-04 (no holidays in this calendar): summer
    assert cal.working.add(datetime(2026, 4, 30, 17, tzinfo=CHINA), 3600) == \
        datetime(2026, 5, 1, 9, tzinfo=CHINA).astimezone(UTC)
    assert cal.working.add(datetime(2026, 5, 4, 12, tzinfo=CHINA), 3600) == \
        datetime(2026, 5, 4, 15, 30, tzinfo=CHINA).astimezone(UTC)
    # the last summer day's office closes at 18:00, the first autumn day's at 17:30
    assert cal.working.seconds(datetime(2026, 9, 30, 17, 30, tzinfo=CHINA), datetime(2026, 9, 30, 19, tzinfo=CHINA)) == 1800
    assert cal.working.seconds(datetime(2026, 10, 1, 17, 30, tzinfo=CHINA), datetime(2026, 10, 1, 19, tzinfo=CHINA)) == 0
    # a winter range runs over the new year
    winter = OfficeHours.parse("08:30-12:00,14:00-17:30", "11-01..02-28=09:00-12:00,13:30-17:00")
    assert winter.periods(date(2027, 1, 15)) == winter.periods(date(2026, 11, 1)) != winter.periods(date(2026, 3, 1))


@pytest.mark.parametrize("default, seasons", [
    ("8:30-12", ""), ("12:00-08:30", ""), ("08:30-12:00,11:00-17:30", ""), ("25:00-26:00", ""),
    ("08:30-12:00", "05-01..09-31=08:30-12:00"), ("08:30-12:00", "summer=08:30-12:00"),
])
def test_bad_office_hours_are_refused(default, seasons):
    with pytest.raises(ValueError):
        OfficeHours.parse(default, seasons)


def test_the_app_refuses_to_start_with_bad_office_hours(tmp_path):
    from app import ConfigError, create_app

    with pytest.raises(ConfigError, match="OFFICE_HOURS"):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                    "OFFICE_HOURS": "08:30-12:00,11:00-17:30"})


# ---------------------------------------------------------------------------------------------- laws

OFFICIAL = Calendar({d: w for d, w, _ in official_days()})
SUMMER = Calendar(OFFICIAL.overrides, OfficeHours.parse("08:30-12:00,14:00-17:30",
                                                        "05-01..09-30=08:00-12:00,14:30-18:00"))
instants = st.datetimes(min_value=datetime(2024, 12, 1), max_value=datetime(2026, 12, 31),
                        timezones=st.just(CHINA))
# Up to 40 office days, in whole milliseconds: limits are minutes, and a sum of floats below a microsecond
# would round away at the end of an office period (12:00 + nothing is 12:00, + 1 µs is 14:00).
durations = st.integers(min_value=0, max_value=40 * 7 * 3600 * 1000).map(lambda ms: ms / 1000)
LAWS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EPS = 1e-6  # seconds: datetimes hold microseconds


@LAWS
@given(start=instants, a=durations, b=durations, cal=st.sampled_from([OFFICIAL, SUMMER]))
def test_deadline_is_monotone_in_the_limit(start, a, b, cal):
    a, b = sorted((a, b))
    assert cal.working.add(start, a) <= cal.working.add(start, b)


@LAWS
@given(s1=instants, s2=instants, limit=durations, cal=st.sampled_from([OFFICIAL, SUMMER]))
def test_deadline_is_monotone_in_the_start(s1, s2, limit, cal):
    s1, s2 = sorted((s1, s2))
    assert cal.working.add(s1, limit) <= cal.working.add(s2, limit)


@LAWS
@given(start=instants, limit=durations, cal=st.sampled_from([OFFICIAL, SUMMER]))
def test_deadline_and_elapsed_time_are_inverse(start, limit, cal):
    due = cal.working.add(start, limit)
    assert abs(cal.working.seconds(start, due) - limit) <= EPS
    assert due >= start + timedelta(seconds=limit) - timedelta(microseconds=1)  # never sooner than natural time
    if limit > 0:  # the earliest such instant: a moment earlier, less has passed
        assert cal.working.seconds(start, due - timedelta(seconds=1)) < limit


@LAWS
@given(start=instants, a=durations, b=durations)
def test_deadlines_add_up(start, a, b):
    clock = OFFICIAL.working
    assert abs((clock.add(clock.add(start, a), b) - clock.add(start, a + b)).total_seconds()) <= 2 * EPS


@LAWS
@given(t1=instants, t2=instants, t3=instants)
def test_elapsed_time_adds_up_and_never_exceeds_natural_time(t1, t2, t3):
    t1, t2, t3 = sorted((t1, t2, t3))
    clock = OFFICIAL.working
    assert abs(clock.seconds(t1, t3) - clock.seconds(t1, t2) - clock.seconds(t2, t3)) <= EPS
    assert clock.seconds(t1, t3) <= OFFICIAL.natural.seconds(t1, t3)
    assert clock.seconds(t3, t1) == 0.0
