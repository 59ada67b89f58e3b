"""Roster domain rules (skills, availability) and the CSV/JSON import parsing. No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from dispatch import roster as dom
from dispatch import roster_cells as rc
from dispatch import roster_files as ri
from dispatch.errors import ValidationFailed


def person(**over: object) -> dom.PersonCreate:
    base: dict[str, object] = {
        "kind": "volunteer",
        "name": "Ann",
        "jurisdiction": "pd",
        "home": {"lat": 31.2, "lon": 121.5},
    }
    return dom.PersonCreate.model_validate(base | over, strict=False)


def test_expired_skill_and_expired_certification_do_not_count() -> None:
    p = person(
        skills=[
            {"name": "first_aid", "level": 3},
            {"name": "driver", "level": 2, "expires_on": "2027-01-31"},
            {"name": "nurse", "level": 4},
            {"name": "boat", "level": 1},
        ],
        certifications=[
            {"name": "first_aid", "expires_on": "2026-12-31"},
            {"name": "nurse", "expires_on": "2024-01-01"},
        ],
    )
    assert dom.effective_skills(p, date(2026, 12, 31)) == {"first_aid": 3, "driver": 2, "boat": 1}
    assert dom.effective_skills(p, date(2027, 1, 1)) == {"driver": 2, "boat": 1}
    assert dom.effective_skills(p, date(2027, 2, 1)) == {"boat": 1}


def test_one_valid_certification_among_expired_ones_keeps_the_skill() -> None:
    p = person(
        skills=[{"name": "nurse", "level": 4}],
        certifications=[
            {"name": "nurse", "expires_on": "2020-01-01"},
            {"name": "nurse", "expires_on": "2030-01-01"},
        ],
    )
    assert dom.effective_skills(p, date(2025, 6, 1)) == {"nurse": 4}


def test_weekly_windows_are_local_to_the_persons_timezone() -> None:
    p = person(
        availability={
            "timezone": "Asia/Shanghai",
            "weekly": [{"day": 0, "start": "08:00", "end": "18:00"}],
        }
    )
    monday_9_local = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, a Monday
    assert dom.is_available(p, monday_9_local)
    assert not dom.is_available(p, monday_9_local + timedelta(hours=9))  # 18:00 local: end
    assert not dom.is_available(p, monday_9_local + timedelta(days=1))


def test_overnight_window_runs_into_the_next_day_including_sunday_to_monday() -> None:
    p = person(availability={"weekly": [{"day": 6, "start": "22:00", "end": "06:00"}]})
    assert dom.is_available(p, datetime(2025, 6, 8, 23, 0, tzinfo=UTC))  # Sunday 23:00
    assert dom.is_available(p, datetime(2025, 6, 9, 5, 59, tzinfo=UTC))  # Monday 05:59
    assert not dom.is_available(p, datetime(2025, 6, 9, 6, 0, tzinfo=UTC))
    assert not dom.is_available(p, datetime(2025, 6, 8, 21, 59, tzinfo=UTC))


def test_exceptions_override_weekly_and_unavailable_wins_over_available() -> None:
    tz8 = timezone(timedelta(hours=8))
    p = person(
        availability={
            "weekly": [{"day": d, "start": "00:00", "end": "00:00"} for d in range(7)],
            "exceptions": [
                {
                    "start": "2025-06-02T00:00:00Z",
                    "end": "2025-06-03T00:00:00Z",
                    "available": False,
                },
                {"start": "2025-06-02T10:00:00Z", "end": "2025-06-02T12:00:00Z", "available": True},
            ],
        }
    )
    assert dom.is_available(p, datetime(2025, 6, 1, 12, 0, tzinfo=UTC))
    assert not dom.is_available(p, datetime(2025, 6, 2, 11, 0, tzinfo=UTC))
    assert not dom.is_available(p, datetime(2025, 6, 2, 18, 0, tzinfo=tz8))
    assert dom.is_available(p, datetime(2025, 6, 3, 0, 0, tzinfo=UTC))


def test_no_weekly_windows_means_always_available_unless_inactive() -> None:
    at = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)
    assert dom.is_available(person(), at)
    assert not dom.is_available(person(active=False), at)
    with pytest.raises(ValueError):
        dom.is_available(person(), datetime(2025, 6, 2, 3, 0))


def test_person_models_refuse_bad_values() -> None:
    for bad in (
        {"home": {"lat": 91, "lon": 0}},
        {"skills": [{"name": "x", "level": 6}]},
        {"skills": [{"name": "x", "level": 1}, {"name": "x", "level": 2}]},
        {"availability": {"timezone": "Mars/Olympus"}},
        {"availability": {"weekly": [{"day": 7, "start": "08:00", "end": "09:00"}]}},
        {"availability": {"weekly": [{"day": 1, "start": "8:00", "end": "09:00"}]}},
        {"max_hours_per_24h": 0},
        {"colour": "red"},
    ):
        with pytest.raises(ValueError):
            person(**bad)


def test_to_json_hides_contacts_and_home_without_pii_rights() -> None:
    row = {
        "id": "p1",
        "kind": "staff",
        "name": "Ann",
        "jurisdiction_code": "pd",
        "home_lat": 31.0,
        "home_lon": 121.0,
        "contacts": {"phone": "+86 1"},
        "skills": [],
        "certifications": [],
        "availability": {"timezone": "UTC", "weekly": [], "exceptions": []},
        "max_hours_per_24h": 7.300000190734863,
        "min_rest_hours": 8.0,
        "reserve": False,
        "active": True,
        "version": 1,
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
    hidden = dom.to_json(row, show_pii=False)
    assert "contacts" not in hidden and "home" not in hidden
    shown = dom.to_json(row, show_pii=True)
    assert shown["contacts"] == {"phone": "+86 1"} and shown["home"] == {"lat": 31.0, "lon": 121.0}
    assert shown["max_hours_per_24h"] == 7.3
    assert dom.person_from_row(row).jurisdiction == "pd"


def test_csv_mini_languages_parse_into_person_fields() -> None:
    assert rc.parse_skills("first_aid:3; driver:2@2027-01-31") == [
        {"name": "first_aid", "level": "3"},
        {"name": "driver", "level": "2", "expires_on": "2027-01-31"},
    ]
    assert rc.parse_certifications("first_aid@2026-12-31;hazmat") == [
        {"name": "first_aid", "expires_on": "2026-12-31"},
        {"name": "hazmat"},
    ]
    weekly = rc.parse_weekly("mon-wed 08:00-12:00; sat,sun 22:00-06:00; fri-mon 01:00-02:00")
    days = [(w["day"], w["start"]) for w in weekly]
    assert days[:3] == [(0, "08:00"), (1, "08:00"), (2, "08:00")]
    assert (5, "22:00") in days and (6, "22:00") in days
    assert [d for d, s in days if s == "01:00"] == [4, 5, 6, 0]
    assert len(rc.parse_weekly("daily 09:00-10:00")) == 7
    for bad in ("first_aid", "first_aid:"):
        with pytest.raises(ValueError):
            rc.parse_skills(bad)
    with pytest.raises(ValueError):
        rc.parse_weekly("someday 08:00-09:00")


CSV_HEADER = "id,kind,name,jurisdiction,home_lat,home_lon,phone,skills,availability,reserve\n"


def test_csv_file_is_validated_row_by_row_with_line_numbers_and_columns() -> None:
    raw = (
        CSV_HEADER
        + "a1,volunteer,Ann,pd,31.2,121.5,+8613800000000,first_aid:3,mon-fri 08:00-18:00,yes\n"
        + "a2,staff,Bob,pd,91,121.5,,,,\n"
        + "\n"
        + "a1,staff,Dup,pd,31,121,,,,\n"
        + ",staff,Carl,pd,31,121,,first_aid:x,,\n"
        + "a5,staff,Eve,pd,31,121,,,,maybe\n"
    ).encode()
    parsed = ri.parse(raw, "csv")
    assert parsed.total == 5
    assert sorted(parsed.bad_rows) == [3, 5, 6, 7]
    locs = [e.loc for e in parsed.errors]
    assert locs == ["/rows/3/home_lat", "/rows/5/id", "/rows/6/skills", "/rows/7/reserve"]
    (good,) = parsed.records
    assert good[0] == 2 and good[1] == "a1" and good[-2] is True


def test_csv_header_problems_fail_the_whole_file() -> None:
    with pytest.raises(ValidationFailed) as exc:
        ri.parse(b"kind,name,jurisdiction,home_lat,colour\n", "csv")
    assert [e.loc for e in exc.value.errors] == ["/header/colour"]
    with pytest.raises(ValidationFailed) as exc:
        ri.parse(b"kind,name,jurisdiction,home_lat\n", "csv")
    assert [e.loc for e in exc.value.errors] == ["/header/home_lon"]
    with pytest.raises(ValidationFailed):
        ri.parse(CSV_HEADER.encode(), "csv")  # no rows
    with pytest.raises(ValidationFailed):
        ri.parse(b"\xff\xfe", "csv")


def test_json_file_accepts_list_or_envelope_and_names_bad_rows() -> None:
    ok = b'{"kind": "staff", "name": "X", "jurisdiction": "pd", "home": {"lat": 1, "lon": 2}}'
    bad = b'{"kind": "staff", "name": "X", "jurisdiction": "pd", "home": {"lat": "1", "lon": 2}}'
    parsed = ri.parse(b"[" + ok + b"," + bad + b"," + ok + b"]", "json")
    assert parsed.bad_rows == {2}
    assert [e.loc for e in parsed.errors] == ["/rows/2/home/lat"]
    assert [r[0] for r in parsed.records] == [1, 3]
    parsed = ri.parse(b'{"people": [' + ok + b"]}", "json")
    assert parsed.total == 1 and not parsed.errors
    for whole in (b"{not json", b'{"persons": []}', b'"people"', b"[]"):
        with pytest.raises(ValidationFailed):
            ri.parse(whole, "json")
