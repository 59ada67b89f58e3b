"""The bundled scenarios parse and validate and hold what they promise; generated incidents that
close once someone is on scene run through the real drill runner."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import pytest

from dispatch.demo_city import generate
from drills.runner import DrillOptions, run_drill
from drills.scenario import (
    IncidentReported,
    ModeChanged,
    Scenario,
    VolunteersUnavailable,
    load_scenario,
    parse_scenario,
)

ROOT = Path(__file__).parents[2]
BUNDLED = sorted((ROOT / "drills" / "scenarios").glob("*.yaml"))


def _incidents(sc: Scenario) -> list[IncidentReported]:
    return [i for i in sc.timeline if isinstance(i, IncidentReported)]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_every_bundled_scenario_is_valid_and_city_scale(path: Path) -> None:
    sc, _ = load_scenario(path)
    assert sc.roster.generated is not None and sc.roster.generated.people >= 2000
    assert sc.objectives, "a bundled scenario states what the response is measured against"
    incidents = _incidents(sc)
    assert len(incidents) >= 40
    assert len({i.id for i in incidents}) == len(incidents)
    assert all(i.at <= sc.duration for i in sc.timeline)
    # Every jurisdiction named exists in the generated city the scenario runs on.
    codes = {j["code"] for j in generate(10, seed=sc.roster.generated.seed).jurisdictions}
    named = {getattr(i, "jurisdiction", None) for i in sc.timeline} - {None}
    assert named <= codes, f"unknown jurisdictions: {sorted(named - codes)}"
    demanded = {d.skill for i in incidents for d in i.demands}
    assert demanded, "incidents demand people"


def test_the_bundled_set_covers_the_issue() -> None:
    names = {p.stem for p in BUNDLED}
    assert names >= {"urban_flood", "heatwave", "epidemic_lockdown", "earthquake", "replay_example"}


def test_heatwave_visits_every_registered_resident() -> None:
    sc, _ = load_scenario(ROOT / "drills" / "scenarios" / "heatwave.yaml")
    visits = [i for i in _incidents(sc) if i.kind == "welfare_visit"]
    assert len(visits) == 152, "one visit per registered elderly person living alone"
    assert {i.jurisdiction.split("-")[0] for i in visits if i.jurisdiction} == {
        "huangpu",
        "hongkou",
    }
    assert all(i.close_after_arrival is not None and i.close_after is None for i in visits)
    frail = [i for i in visits if i.priority == 2]
    assert len(frail) == 52 and all(d.skill == "elderly_care" for i in frail for d in i.demands)
    texts = [o.text() for o in sc.objectives]
    assert "100% of priority-2 demand staffed within 120 min" in texts
    assert "100% of priority-3 demand staffed within 240 min" in texts


def test_epidemic_lockdown_delivers_daily_for_three_days() -> None:
    sc, _ = load_scenario(ROOT / "drills" / "scenarios" / "epidemic_lockdown.yaml")
    deliveries = [i for i in _incidents(sc) if i.kind == "supply_delivery"]
    per_day = Counter(i.at // 86_400 for i in deliveries)
    assert sorted(per_day.items()) == [(0, 14), (1, 20), (2, 20)]
    assert all(i.supplies.get("food_kit") for i in deliveries)
    shares = [
        i.share
        for i in sc.timeline
        if isinstance(i, VolunteersUnavailable) and i.jurisdiction == "putuo"
    ]
    assert shares == sorted(shares) and len(shares) == 3, "isolation grows day by day"
    assert any(d.id == "hub-market" for d in sc.depots)


def test_earthquake_is_level_one_with_mutual_aid_and_many_simultaneous_incidents() -> None:
    sc, _ = load_scenario(ROOT / "drills" / "scenarios" / "earthquake.yaml")
    modes = {(m.jurisdiction, m.level) for m in sc.timeline if isinstance(m, ModeChanged)}
    assert ("yangpu", "I") in modes and ("hongkou", "II") in modes
    first_hour = [i for i in _incidents(sc) if i.at <= 3600]
    assert len(first_hour) >= 50
    assert {i.type for i in sc.timeline} >= {"depot_lost", "travel_slowed"}


def test_the_sample_csv_ships_with_the_package() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    data = conf["tool"]["setuptools"]["package-data"]["drills"]
    assert "scenarios/data/*.csv" in data and "scenarios/*.yaml" in data
    sc, _ = load_scenario(ROOT / "drills" / "scenarios" / "replay_example.yaml")
    calls = [i for i in _incidents(sc) if i.id.startswith("call-")]
    assert len(calls) == 69 and all(i.location is not None for i in calls)


VISITS = """\
name: visits
start: 2026-07-25T09:00:00+08:00
duration: "+01:40:00"
seed: 4
roster:
  generated: {people: 200, seed: 2}
engine: {solve_time_limit_s: 1.0, debounce_s: 1.0}
responders:
  default: {accept_probability: 1.0, no_show_rate: 0.0, departure_delay_s: 60}
generate:
  - id_prefix: wv
    kind: welfare_visit
    title: Welfare visit
    priority: 2
    between: ["+00:05:00", "+00:10:00"]
    demands: [{skill: first_aid, count: 1}]
    close_after_arrival: "+00:15:00"
    close_after: "+01:20:00"
    jurisdictions: {huangpu-1-1: 2, huangpu-2-1: 1}
timeline:
  - {at: "+00:00:00", type: mode_changed, jurisdiction: huangpu, mode: emergency, level: III}
"""


async def test_generated_visits_close_once_the_visitor_has_been(db_dsn: str) -> None:
    result = await run_drill(db_dsn, parse_scenario(VISITS), Path("."), DrillOptions())
    r = result.report
    incidents = {i["id"]: i for i in r["incidents"]}
    assert sorted(incidents) == ["wv-huangpu-1-1-1", "wv-huangpu-1-1-2", "wv-huangpu-2-1-1"]
    for i in incidents.values():
        assert 300 <= i["reported_s"] <= 600
        assert i["full_staffing_s"] is not None
        # Closed 15 min after the visitor arrived: after staffing, long before the 80-min cap.
        assert i["closed_s"] is not None
        assert i["reported_s"] + i["full_staffing_s"] + 15 * 60 < i["closed_s"]
        assert i["closed_s"] < i["reported_s"] + 80 * 60
    closes = [e for e in r["injects"] if e["type"] == "incident_closed"]
    assert len(closes) == 6 and all(e["ok"] for e in closes)
    assert sum(1 for e in closes if e.get("already_closed")) == 3, "the cap found them closed"
