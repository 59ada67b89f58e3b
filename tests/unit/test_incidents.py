"""Incident lifecycle, demand validation and re-plan triggers: pure domain rules."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from dispatch import supplies
from dispatch.errors import Conflict
from dispatch.incidents import (
    Demand,
    IncidentCreate,
    IncidentPatch,
    IncidentStatus,
    can_transition,
    demand_changed,
    to_json,
    transition,
)
from dispatch.validation import field_errors

S = IncidentStatus
LEGAL = {
    (S.REPORTED, S.ACTIVE),
    (S.REPORTED, S.CLOSED),
    (S.ACTIVE, S.CONTAINED),
    (S.ACTIVE, S.CLOSED),
    (S.CONTAINED, S.ACTIVE),
    (S.CONTAINED, S.CLOSED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_transition_allows_exactly_the_documented_moves(
    current: IncidentStatus, target: IncidentStatus
) -> None:
    if (current, target) in LEGAL:
        assert transition(current, target) is target
        assert can_transition(current, target)
    else:
        with pytest.raises(Conflict) as exc:
            transition(current, target)
        assert exc.value.extra["current_status"] == current.value


def test_closed_is_final_and_says_so() -> None:
    for target in S:
        with pytest.raises(Conflict, match="final") as exc:
            transition("closed", target)
        assert exc.value.extra["allowed"] == []


def test_transition_accepts_plain_strings_and_rejects_unknown_statuses() -> None:
    assert transition("contained", "active") is S.ACTIVE
    with pytest.raises(ValueError):
        transition("reported", "burning")


def errors_of(model: Any, data: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate_json(json.dumps(data))
    return {e.loc: e.msg for e in field_errors(exc.value)}


def test_demand_min_defaults_to_one_and_may_equal_count() -> None:
    assert Demand.model_validate({"skill": "driver", "count": 3}).min == 1
    assert Demand.model_validate({"skill": "driver", "count": 3, "min": 3}).min == 3


@pytest.mark.parametrize(
    ("demand", "loc"),
    [
        ({"skill": "driver", "count": 2, "min": 3}, "/min"),
        ({"skill": "driver", "count": 0}, "/count"),
        ({"skill": "driver", "count": 2, "min": 0}, "/min"),
        ({"skill": "Driver!", "count": 1}, "/skill"),
        ({"skill": "driver", "count": "2"}, "/count"),
        ({"count": 2}, "/skill"),
    ],
)
def test_invalid_demands_name_the_field(demand: dict[str, Any], loc: str) -> None:
    assert loc in errors_of(Demand, demand)


BASE: dict[str, Any] = {
    "type": "flood",
    "title": "Flooded underpass",
    "location": {"lat": 31.2, "lon": 121.5},
    "jurisdiction": "pd",
    "priority": 1,
}


def test_incident_create_validates_priority_location_supplies_and_skills() -> None:
    assert IncidentCreate.model_validate(BASE).status is S.REPORTED
    assert "/priority" in errors_of(IncidentCreate, BASE | {"priority": 6})
    assert "/location/lon" in errors_of(IncidentCreate, BASE | {"location": {"lat": 0, "lon": 200}})
    assert "/supplies/water" in errors_of(IncidentCreate, BASE | {"supplies": {"water": 0}})
    assert "/status" in errors_of(IncidentCreate, BASE | {"status": "contained"})
    dup = [{"skill": "driver", "count": 1}, {"skill": "driver", "count": 2}]
    assert "/demands" in errors_of(IncidentCreate, BASE | {"demands": dup})
    assert "/demands" in errors_of(IncidentPatch, {"demands": dup})
    assert "/status" in errors_of(IncidentPatch, {"status": "active"})


def test_stock_rules_refuse_negative_and_below_reserved() -> None:
    assert supplies.adjusted("water", 100, 30, -70) == 30
    with pytest.raises(Conflict):
        supplies.adjusted("water", 100, 30, -71)
    with pytest.raises(Conflict):
        supplies.adjusted("water", 5, 0, -6)
    supplies.check_quantity("water", 30, 30)
    with pytest.raises(Conflict):
        supplies.check_quantity("water", 29, 30)


def incident(**over: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = {
        "id": "inc-1",
        "type": "flood",
        "title": "T",
        "description": "",
        "lat": 31.2,
        "lon": 121.5,
        "jurisdiction_code": "pd",
        "priority": 2,
        "status": "reported",
        "demands": [{"skill": "a", "count": 2, "min": 1}, {"skill": "b", "count": 1, "min": 1}],
        "supplies": {"water": 5},
        "reported_at": now,
        "closed_at": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    return to_json(row | over)


def test_demand_changed_only_for_what_the_plan_depends_on() -> None:
    base = incident()
    assert not demand_changed(base, incident(title="New title", description="more"))
    assert not demand_changed(base, incident(type="fire"))
    assert not demand_changed(base, incident(status="active"))
    assert not demand_changed(base, incident(demands=list(reversed(base["demands"]))))
    assert demand_changed(base, incident(demands=[{"skill": "a", "count": 3, "min": 1}]))
    assert demand_changed(base, incident(demands=base["demands"][:1]))
    assert demand_changed(
        base, incident(demands=[{"skill": "a", "count": 2, "min": 2}, base["demands"][1]])
    )
    assert demand_changed(base, incident(supplies={"water": 6}))
    assert demand_changed(base, incident(lat=31.3))
    assert demand_changed(base, incident(priority=1))
    assert demand_changed(base, incident(jurisdiction_code="hp"))
    assert demand_changed(base, incident(status="contained"))
    assert demand_changed(base, incident(status="closed"))
    assert demand_changed(incident(status="contained"), incident(status="active"))


def test_demand_changed_on_creation_and_for_incidents_out_of_planning() -> None:
    assert demand_changed(None, incident())
    assert not demand_changed(None, incident(status="closed"))
    contained = incident(status="contained")
    assert not demand_changed(contained, incident(status="contained", priority=1))
    assert demand_changed(contained, incident(status="closed"))  # the crew comes free
    assert not demand_changed(incident(status="closed"), None)
