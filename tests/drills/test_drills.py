"""Drills on a real PostgreSQL: determinism, isolation from live rows, exercise marking,
objectives, compare, and scenario errors that name the field and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dispatch.audit import AuditContext
from dispatch.demo_city import generate
from dispatch.storage.database import create_pool
from dispatch.storage.seed import load_city
from drills.compare import compare
from drills.report import canonical_json, write_report
from drills.runner import DrillOptions, run_drill
from drills.scenario import ScenarioError, parse_scenario
from tests.drills import drill_schemas, live_rows

SMALL = """\
name: small-flood
description: a short test drill
start: 2026-07-18T14:00:00+08:00
duration: "+01:00:00"
seed: 5
roster:
  generated: {people: 200, seed: 2}
engine: {solve_time_limit_s: 1.0, debounce_s: 1.0}
responders:
  default: {accept_probability: 0.7, no_show_rate: 0.1}
  overrides:
    - {kind: staff, accept_probability: 0.95}
objectives:
  - {metric: staffed_within, priority: 1, minutes: 15, share: 0.5}
  - {metric: first_offer_within, minutes: 5, share: 0.8}
  - {metric: expiry_rate_at_most, value: 0.0001}
timeline:
  - {at: "+00:00:00", type: mode_changed, jurisdiction: pudong, mode: emergency, level: II}
  - at: "+00:02:00"
    type: incident_reported
    id: f1
    title: Flooded basement
    jurisdiction: pudong-1-1
    priority: 1
    demands: [{skill: first_aid, count: 2}, {skill: logistics, count: 1}]
    supplies: {water_l: 100}
  - {at: "+00:04:00", type: incident_reported, id: f2, title: Trapped, jurisdiction: pudong-2-1,
     priority: 2, demands: [{skill: driver, count: 2}], close_after: "+00:40:00"}
  - {at: "+00:06:00", type: travel_slowed, jurisdiction: pudong-2, factor: 2.0, until: "+00:40:00"}
  - {at: "+00:08:00", type: volunteers_unavailable, jurisdiction: pudong-3, share: 0.5}
  - {at: "+00:10:00", type: incident_reported, id: f3, title: Shelter, jurisdiction: pudong-3-1,
     priority: 3, demands: [{skill: cook, count: 1}], supplies: {food_kit: 20, blanket: 10}}
  - {at: "+00:15:00", type: incident_updated, id: f1,
     demands: [{skill: first_aid, count: 3}, {skill: logistics, count: 1}]}
  - {at: "+00:20:00", type: depot_lost, depot: depot-pudong}
  - {at: "+00:25:00", type: incident_reported, id: f4, title: Medical, jurisdiction: pudong-1-2,
     priority: 1, demands: [{skill: first_aid, count: 1}]}
  - {at: "+00:50:00", type: incident_closed, id: f1}
  - {at: "+00:55:00", type: mode_changed, jurisdiction: pudong, mode: routine, reason: over}
"""


async def _drill(dsn: str, **opts: Any) -> Any:
    return await run_drill(dsn, parse_scenario(SMALL), Path("."), DrillOptions(**opts))


async def test_same_scenario_and_seed_give_an_identical_report(db_dsn: str) -> None:
    first = await _drill(db_dsn)
    second = await _drill(db_dsn)
    assert first.schema != second.schema
    assert canonical_json(first.report) == canonical_json(second.report)
    assert first.report["summary"]["offers"] > 0, "the drill did mobilise people"
    other = await _drill(db_dsn, seed=99)
    assert canonical_json(other.report) != canonical_json(first.report)


async def _live_state(dsn: str) -> dict[str, Any]:
    return {**await live_rows(dsn), "_schemas": await drill_schemas(dsn)}


async def test_a_drill_beside_live_data_changes_no_live_row(db_dsn: str) -> None:
    # Live data with the same ids the drill will generate (same demo city), plus live work.
    pool = await create_pool(db_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as con:
            await load_city(con, generate(200, seed=2), AuditContext.system("test"))
            await con.execute(
                "INSERT INTO incidents (id, type, title, lat, lon, jurisdiction_code, priority,"
                " status, demands) VALUES ('f1', 'flood', 'live one', 31.2, 121.5, 'pudong-1-1',"
                ' 2, \'active\', \'[{"skill": "driver", "count": 1}]\')'
            )
    finally:
        await pool.close()
    before = await _live_state(db_dsn)
    assert before["people"] and before["incidents"]
    result = await _drill(db_dsn)
    assert result.report["summary"]["offers"] > 0
    after = await _live_state(db_dsn)
    assert after == before, "a drill changed live rows"
    assert after["_schemas"] == [], "the drill schema was dropped"


async def test_every_message_a_drill_produces_is_exercise_marked(db_dsn: str) -> None:
    result = await _drill(db_dsn, keep=True)
    con = await asyncpg.connect(db_dsn)
    try:
        counts = await con.fetchrow(
            f"SELECT count(*) AS n, count(*) FILTER (WHERE NOT exercise) AS live"
            f' FROM "{result.schema}".outbox'
        )
        kinds = {
            r["kind"]
            for r in await con.fetch(f'SELECT DISTINCT kind FROM "{result.schema}".outbox')
        }
        assert await con.fetchval("SELECT count(*) FROM public.outbox") == 0
    finally:
        await con.execute(f'DROP SCHEMA "{result.schema}" CASCADE')
        await con.close()
    assert counts["n"] > 0 and counts["live"] == 0
    assert {"offer", "released"} <= kinds
    assert result.report["messages"]["not_exercise_marked"] == 0
    assert result.report["messages"]["count"] == counts["n"]


async def test_objectives_are_evaluated_and_the_report_files_are_written(
    db_dsn: str, tmp_path: Path
) -> None:
    result = await _drill(db_dsn)
    objectives = {o["metric"]: o for o in result.report["objectives"]}
    assert set(objectives) == {"staffed_within", "first_offer_within", "expiry_rate_at_most"}
    for o in objectives.values():
        assert o["measured"] is not None and isinstance(o["met"], bool)
    exp = objectives["expiry_rate_at_most"]
    assert exp["met"] == (exp["measured"] <= 0.0001)
    assert exp["measured"] == result.report["offers"]["expiry_rate"]
    assert result.report["summary"]["objectives_met"] == sum(o["met"] for o in objectives.values())
    paths = write_report(result.report, result.run, tmp_path)
    page = paths["html"].read_text("utf-8")
    assert page.count("data:image/png;base64,") >= 5 and "EXERCISE" in page
    assert json.loads(paths["json"].read_text("utf-8")) == json.loads(canonical_json(result.report))
    assert "wall_seconds" in json.loads(paths["run"].read_text("utf-8"))
    assert paths["coverage"].read_bytes().startswith(b"\x89PNG")
    assert "wall_seconds" not in paths["json"].read_text("utf-8")
    f1 = next(i for i in result.report["incidents"] if i["id"] == "f1")
    assert f1["first_offer_s"] is not None and f1["people_slots"] == 3


async def test_compare_lists_both_runs_key_figures(db_dsn: str) -> None:
    optimised = await _drill(db_dsn)
    greedy = await _drill(db_dsn, policy="greedy")
    assert greedy.report["scenario"]["policy"] == "greedy"
    assert set(greedy.report["replans"]["by_method"]) - {"none"} == {"greedy"}
    text = compare(optimised.report, greedy.report, ("optimised", "greedy"))
    for label, key in (("slots staffed", "slots_staffed"), ("offers", "offers")):
        line = next(x for x in text.splitlines() if x.startswith(label + " "))
        assert str(optimised.report["summary"][key]) in line
        assert str(greedy.report["summary"][key]) in line
    assert "Jain fairness (hours)" in text and "objective:" in text


def test_a_malformed_scenario_names_the_field_and_the_line() -> None:
    bad = SMALL.replace("    priority: 1\n", "    priority: 7\n", 1)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(bad, "flood.yaml")
    line = bad.splitlines().index("    priority: 7") + 1
    issue = err.value.issues[0]
    assert (issue.path, issue.line) == ("timeline[1].priority", line)
    assert f"flood.yaml:{line}: timeline[1].priority:" in str(err.value)


def test_scenario_errors_for_references_offsets_and_yaml_syntax_have_lines() -> None:
    bad = SMALL.replace("type: incident_closed, id: f1", "type: incident_closed, id: nope")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(bad)
    line = next(k for k, x in enumerate(bad.splitlines(), 1) if "id: nope" in x)
    assert [(i.path, i.line) for i in err.value.issues] == [("timeline[9].id", line)]
    with pytest.raises(ScenarioError) as err:
        parse_scenario(SMALL.replace('duration: "+01:00:00"', "duration: soon"))
    assert (err.value.issues[0].path, err.value.issues[0].line) == ("duration", 4)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(SMALL.replace("roster:\n", "roster: [\n"))
    assert err.value.issues[0].line is not None


def test_the_bundled_urban_flood_scenario_is_valid() -> None:
    from drills.scenario import load_scenario

    sc, _ = load_scenario(Path(__file__).parents[2] / "drills" / "scenarios" / "urban_flood.yaml")
    reported = [i for i in sc.timeline if i.type == "incident_reported"]
    assert 30 <= len(reported) <= 60 and sc.duration == 6 * 3600
    assert sc.roster.generated is not None and sc.roster.generated.people == 2000
    assert {i.type for i in sc.timeline} >= {"mode_changed", "travel_slowed", "depot_lost"}
