"""Historical replay (a CSV of calls → incident injects) and generated incidents: conversion,
time shift, ordering, errors that name the CSV line and column, and one drill on a replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drills import replay
from drills.runner import DrillOptions, run_drill
from drills.scenario import (
    IncidentReported,
    Location,
    Replay,
    ScenarioError,
    expand_generator,
    load_scenario,
    parse_scenario,
)

START = datetime(2025, 9, 17, 18, 0, tzinfo=timezone(timedelta(hours=8)))

TYPES = {
    "Medical": {
        "priority": 2,
        "demands": [{"skill": "first_aid", "count": 2}],
        "supplies": {"medical_kit": 1},
        "close_after": "+00:50:00",
    },
    "Fall - elderly": {
        "kind": "fall",
        "title": "Elderly person fallen",
        "demands": [{"skill": "elderly_care", "count": 1}],
    },
}


def spec(**over: object) -> Replay:
    base: dict[str, object] = {
        "file": "calls.csv",
        "columns": {"at": "received", "lat": "y", "lon": "x", "type": "category"},
        "types": TYPES,
    }
    return Replay.model_validate(base | over)


CSV = """\
received,y,x,category,ref,prio,remarks
2025-09-17 19:10:00,31.2301,121.4702,Medical,A7,,chest pain
2025-09-17 18:40:00,31.2402,121.4803,fall - ELDERLY,A3,,lives alone
2025-09-17 19:10:00,31.2503,121.4904,Medical,A9,1,

2025-09-17 21:05:30,31.2604,121.5005,Fall - elderly,A1,4,"wet stairs, cannot stand"
"""


def injects(text: str = CSV, duration: int = 8 * 3600, **over: object) -> list[IncidentReported]:
    calls = replay.convert(spec(**over), text, start=START, duration=duration, source="calls.csv")
    return [c.inject for c in calls]


def test_calls_become_incidents_with_their_types_demands_and_places() -> None:
    out = injects(
        columns={
            "at": "received",
            "lat": "y",
            "lon": "x",
            "type": "category",
            "id": "ref",
            "priority": "prio",
            "note": "remarks",
        }
    )
    by_id = {i.id: i for i in out}
    assert sorted(by_id) == ["call-A1", "call-A3", "call-A7", "call-A9"]
    med = by_id["call-A7"]
    assert (med.kind, med.title, med.priority) == ("medical", "Medical (replayed call)", 2)
    assert [(d.skill, d.count) for d in med.demands] == [("first_aid", 2)]
    assert med.supplies == {"medical_kit": 1} and med.close_after == 50 * 60
    assert med.location == Location(lat=31.2301, lon=121.4702)
    assert med.jurisdiction is None, "placed by the runner in the nearest community"
    assert med.note == "calls.csv:2: chest pain"
    fall = by_id["call-A3"]  # the type column matched case-insensitively
    assert (fall.kind, fall.title, fall.priority) == ("fall", "Elderly person fallen", 3)
    assert by_id["call-A9"].priority == 1, "a priority in the CSV overrides the type's"
    assert by_id["call-A1"].priority == 4
    assert by_id["call-A1"].note == "calls.csv:6: wet stairs, cannot stand"
    assert by_id["call-A1"].close_after is None


def test_calls_are_shifted_to_the_start_sorted_and_numbered_in_time_order() -> None:
    out = injects(offset="+00:15:00")
    # 18:40 is the earliest call: it lands at +15 min, the rest keep their spacing.
    assert [(i.id, i.at) for i in out] == [
        ("call-0001", 15 * 60),
        ("call-0002", 45 * 60),  # 19:10, file line 2 (ties keep file order)
        ("call-0003", 45 * 60),  # 19:10, file line 4
        ("call-0004", 15 * 60 + 2 * 3600 + 25 * 60 + 30),
    ]
    assert [i.location.lat for i in out if i.location] == [31.2402, 31.2301, 31.2503, 31.2604]
    unshifted = injects(shift_to_start=False)
    assert [i.at for i in unshifted] == [40 * 60, 70 * 60, 70 * 60, 3 * 3600 + 5 * 60 + 30]


def test_timestamps_take_a_format_and_a_time_zone() -> None:
    text = "received,y,x,category\n17/09/2025 10:30,31.2,121.4,Medical\n"
    out = injects(text, time_format="%d/%m/%Y %H:%M", timezone="UTC", shift_to_start=False)
    assert out[0].at == 30 * 60, "10:30 UTC is 18:30 at +08:00: 30 min after the start"
    aware = "received,y,x,category\n2025-09-17T19:00:00+09:00,31.2,121.4,Medical\n"
    assert injects(aware, shift_to_start=False)[0].at == 0, "19:00 at +09:00 is 18:00 at +08:00"


def _issues(text: str, **over: object) -> list[tuple[int | None, str, str]]:
    with pytest.raises(replay.ReplayError) as err:
        injects(text, **over)
    assert not err.value.fields
    return [(i.line, i.path, i.msg) for i in err.value.rows]


def test_bad_rows_are_reported_with_their_csv_line_and_column() -> None:
    text = (
        "received,y,x,category\n"
        "2025-09-17 18:10:00,31.2,121.4,Medical\n"
        "2025-09-17 18:20:00,95.5,121.4,Medical\n"
        "yesterday,31.2,121.4,Medical\n"
        "2025-09-17 18:30:00,31.2,east,Flood\n"
        '"2025-09-17 18:40:00",31.2,,"Medical"\n'
    )
    issues = _issues(text)
    assert issues[0] == (3, "column 'y'", "latitude 95.5 is out of range (-90 … 90)")
    assert issues[1][:2] == (4, "column 'received'")
    assert "not an ISO 8601 timestamp" in issues[1][2]
    assert issues[2] == (5, "column 'x'", "'east' is not a number")
    assert issues[3][:2] == (5, "column 'category'")
    assert "unknown type 'Flood'" in issues[3][2] and "Fall - elderly, Medical" in issues[3][2]
    assert issues[4] == (6, "column 'x'", "empty")
    err = _issues("received,y,x,category\n18:10,31.2,121.4,Medical\n", time_format="%d/%m %H:%M")
    assert err == [(2, "column 'received'", "'18:10' does not match time_format '%d/%m %H:%M'")]


def test_duplicate_ids_bad_priorities_and_calls_outside_the_drill_are_errors() -> None:
    text = (
        "received,y,x,category,ref,prio\n"
        "2025-09-17 18:10:00,31.2,121.4,Medical,A1,\n"
        "2025-09-17 18:20:00,31.2,121.4,Medical,A1,0\n"
    )
    cols = {"at": "received", "lat": "y", "lon": "x", "type": "category", "id": "ref"}
    issues = _issues(text, columns=cols | {"priority": "prio"})
    assert issues == [
        (3, "column 'prio'", "priority '0' is not 1 … 5"),
        (3, "column 'ref'", "id 'A1' also on line 2"),
    ]
    late = "received,y,x,category\n2025-09-17 18:10:00,31,121,Medical\n2025-09-18 04:00:00,31,121,Medical\n"
    assert _issues(late, duration=3 * 3600) == [
        (3, "column 'received'", "lands at +09:50:00, after the end of the drill (+03:00:00)")
    ]
    early = "received,y,x,category\n2025-09-17 17:10:00,31,121,Medical\n"
    assert _issues(early, shift_to_start=False)[0][0] == 2
    many = "received,y,x,category\n" + "nope,31,121,Medical\n" * 30
    issues = _issues(many)
    assert len(issues) == replay.MAX_ROW_ISSUES + 1
    assert issues[-1][2] == f"… and {30 - replay.MAX_ROW_ISSUES} more problems"


SCENARIO = """\
name: replay-test
start: 2025-09-17T18:00:00+08:00
duration: "+01:00:00"
seed: 3
roster:
  generated: {people: 200, seed: 2}
engine: {solve_time_limit_s: 1.0, debounce_s: 1.0}
responders:
  default: {accept_probability: 0.9, no_show_rate: 0.0}
objectives:
  - {metric: first_offer_within, minutes: 5, share: 0.5}
replay:
  file: calls.csv
  columns:
    at: received
    lat: latitude
    lon: longitude
    type: category
    id: call_id
  offset: "+00:05:00"
  types:
    medical: {priority: 1, demands: [{skill: first_aid, count: 1}], close_after: "+00:30:00"}
    tree: {priority: 3, demands: [{skill: logistics, count: 2}]}
timeline:
  - {at: "+00:00:00", type: mode_changed, jurisdiction: city, mode: emergency, level: III}
  - {at: "+00:20:00", type: incident_updated, id: call-T2, priority: 2}
"""

CALLS = """\
call_id,received,latitude,longitude,category
M1,2025-09-17 21:00:00,31.2000,121.4000,medical
T2,2025-09-17 21:10:00,31.2900,121.5100,tree
M3,2025-09-17 21:12:00,31.1700,121.5200,Medical
T4,2025-09-17 21:30:00,31.2500,121.3600,tree
"""


def write(tmp_path: Path, scenario: str = SCENARIO, calls: str = CALLS) -> Path:
    (tmp_path / "calls.csv").write_text(calls, "utf-8")
    path = tmp_path / "replay.yaml"
    path.write_text(scenario, "utf-8")
    return path


def test_replayed_calls_merge_into_the_scripted_timeline_in_time_order(tmp_path: Path) -> None:
    sc, _ = load_scenario(write(tmp_path))
    assert sc.replay is None and sc.generate == [], "expanded into the timeline"
    assert [(i.at, i.type, getattr(i, "id", "")) for i in sc.timeline] == [
        (0, "mode_changed", ""),
        (300, "incident_reported", "call-M1"),
        (900, "incident_reported", "call-T2"),
        (1020, "incident_reported", "call-M3"),
        (1200, "incident_updated", "call-T2"),  # a scripted inject may refer to a replayed call
        (2100, "incident_reported", "call-T4"),
    ]


def test_scenario_errors_name_the_yaml_mapping_or_the_csv_line(tmp_path: Path) -> None:
    bad = SCENARIO.replace("    lat: latitude\n", "    lat: lat_wgs84\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, bad))
    line = bad.splitlines().index("    lat: lat_wgs84") + 1
    (issue,) = err.value.issues
    assert (issue.path, issue.line) == ("replay.columns.lat", line)
    assert "no column 'lat_wgs84' in calls.csv" in issue.msg and "latitude" in issue.msg

    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, calls=CALLS.replace(",tree\nM3", ",trees\nM3")))
    assert str(err.value).startswith("calls.csv:3: column 'category': unknown type 'trees'")

    clash = SCENARIO + (
        "  - {at: '+00:01:00', type: incident_reported, id: call-M3, title: x,"
        " jurisdiction: city, priority: 3}\n"
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, clash))
    assert "calls.csv:4: row: incident 'call-M3' is reported twice" in str(err.value)

    missing = SCENARIO.replace("file: calls.csv", "file: nowhere.csv")
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, missing))
    assert err.value.issues[0].path == "replay.file" and "cannot read" in str(err.value)

    with pytest.raises(ScenarioError) as err:
        parse_scenario(SCENARIO)  # bare text: no directory to read a CSV from
    assert err.value.issues[0].path == "replay.file"


GEN = {
    "id_prefix": "wv",
    "kind": "welfare_visit",
    "title": "Welfare visit",
    "jurisdictions": {"xuhui-1-1": 3, "xuhui-1-2": 2},
    "between": ["+00:30:00", "+01:30:00"],
    "priority": 3,
    "demands": [{"skill": "elderly_care", "count": 1}],
    "close_after": ["+00:20:00", "+00:40:00"],
}


def test_generated_incidents_are_seeded_within_their_window_and_repeat() -> None:
    from drills.scenario import Generator

    g = Generator.model_validate(GEN)
    out = expand_generator(g, seed=1, index=0)
    assert [i.id for i in out] == [
        "wv-xuhui-1-1-1",
        "wv-xuhui-1-1-2",
        "wv-xuhui-1-1-3",
        "wv-xuhui-1-2-1",
        "wv-xuhui-1-2-2",
    ]
    assert all(1800 <= i.at <= 5400 and 1200 <= (i.close_after or 0) <= 2400 for i in out)
    assert {i.jurisdiction for i in out} == {"xuhui-1-1", "xuhui-1-2"}
    assert out == expand_generator(g, seed=1, index=0), "same seed, same incidents"
    assert [i.at for i in out] != [i.at for i in expand_generator(g, seed=2, index=0)]
    daily = Generator.model_validate(GEN | {"repeat": {"every": "+24:00:00", "times": 3}})
    days = expand_generator(daily, seed=1, index=0)
    assert len(days) == 15 and days[5].id == "wv-2-xuhui-1-1-1"
    assert all(86_400 + 1800 <= i.at <= 86_400 + 5400 for i in days[5:10])


def test_generate_blocks_merge_and_their_errors_point_at_the_block() -> None:
    base = SCENARIO.split("replay:")[0] + "timeline: []\n"
    text = base + (
        "generate:\n"
        "  - id_prefix: wv\n"
        "    title: Welfare visit\n"
        "    jurisdictions: {xuhui-1-1: 2}\n"
        "    between: ['+00:10:00', '+00:20:00']\n"
        "    priority: 3\n"
        "    demands: [{skill: elderly_care, count: 1}]\n"
    )
    sc = parse_scenario(text)
    assert sorted(i.id for i in sc.timeline) == ["wv-xuhui-1-1-1", "wv-xuhui-1-1-2"]
    assert [i.at for i in sc.timeline] == sorted(i.at for i in sc.timeline)
    late = text.replace("'+00:20:00'", "'+02:20:00'")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(late, "g.yaml")
    line = late.splitlines().index("    between: ['+00:10:00', '+02:20:00']") + 1
    assert [(i.path, i.line) for i in err.value.issues] == [("generate[0].between", line)]
    backwards = text.replace("['+00:10:00', '+00:20:00']", "['+00:30:00', '+00:20:00']")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(backwards)
    assert err.value.issues[0].path == "generate[0]" and "before earliest" in str(err.value)


async def test_a_replayed_night_runs_as_a_drill(db_dsn: str, tmp_path: Path) -> None:
    scenario, base = load_scenario(write(tmp_path))
    result = await run_drill(db_dsn, scenario, base, DrillOptions())
    r = result.report
    incidents = {i["id"]: i for i in r["incidents"]}
    assert sorted(incidents) == ["call-M1", "call-M3", "call-T2", "call-T4"]
    # No jurisdiction column: each call went to the community nearest to it.
    assert all(i["jurisdiction"].count("-") == 2 for i in incidents.values())
    assert incidents["call-M1"]["jurisdiction"] != incidents["call-T2"]["jurisdiction"]
    assert incidents["call-M1"]["reported_s"] == 300 and incidents["call-T4"]["reported_s"] == 2100
    assert incidents["call-M1"]["closed_s"] == 300 + 1800
    assert r["summary"]["offers"] > 0 and r["messages"]["not_exercise_marked"] == 0
    located = [e for e in r["injects"] if e.get("located_in")]
    assert len(located) == 4 and all(e["ok"] for e in r["injects"])
    assert (
        START.astimezone(UTC).isoformat()
        == datetime.fromisoformat(r["scenario"]["start"]).astimezone(UTC).isoformat()
    )
