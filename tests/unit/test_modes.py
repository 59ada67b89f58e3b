"""Modes: ordering, inheritance down the tree, request validation and the default policies."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.errors import ValidationFailed
from dispatch.modes import (
    DEFAULT_POLICIES,
    MODE_KEYS,
    ROUTINE,
    EffectiveMode,
    Level,
    Mode,
    ModeChange,
    ModeKind,
    ModePolicy,
    ModePolicyPut,
    MutualAid,
    Pool,
    TransitionKind,
    effective_by_path,
    effective_mode,
    mode_transition,
    policy_for,
)
from dispatch.validation import parse_json

E4, E3, E2, E1 = (Mode.emergency(lvl) for lvl in ("IV", "III", "II", "I"))


def test_modes_are_ordered_by_severity() -> None:
    assert sorted([E1, ROUTINE, E3, E2, E4]) == [ROUTINE, E4, E3, E2, E1]
    assert ROUTINE < E4 < E3 < E2 < E1
    assert max(E2, E1, E4) == E1
    assert [m.key for m in (ROUTINE, E4, E3, E2, E1)] == list(MODE_KEYS)
    assert Mode.from_key("II") == E2 and Mode.from_key("routine") == ROUTINE


def test_a_mode_value_needs_a_level_exactly_when_it_is_an_emergency() -> None:
    with pytest.raises(ValueError):
        Mode(ModeKind.EMERGENCY)
    with pytest.raises(ValueError):
        Mode(ModeKind.ROUTINE, Level.II)


def test_a_street_inherits_its_districts_emergency() -> None:
    path = [("city", None), ("district-a", E2), ("street", None)]
    assert effective_mode(path) == EffectiveMode(E2, "district-a")


def test_a_child_less_severe_than_its_parent_gets_the_parents_mode() -> None:
    path = [("city", None), ("district-a", E2), ("street", E4)]
    assert effective_mode(path) == EffectiveMode(E2, "district-a")
    path = [("city", None), ("district-a", E2), ("street", ROUTINE)]
    assert effective_mode(path) == EffectiveMode(E2, "district-a")


def test_a_child_more_severe_than_its_parent_keeps_its_own_mode() -> None:
    path = [("city", E4), ("district-a", None), ("street", E1)]
    assert effective_mode(path) == EffectiveMode(E1, "street")


def test_the_city_at_level_one_overrides_everything_below() -> None:
    path = [("city", E1), ("district-a", E2), ("street", E3)]
    assert effective_mode(path) == EffectiveMode(E1, "city")


def test_ties_name_the_nearest_node_and_no_setting_means_routine_from_itself() -> None:
    assert effective_mode([("city", E2), ("d", E2)]) == EffectiveMode(E2, "d")
    assert effective_mode([("city", None), ("d", None)]) == EffectiveMode(ROUTINE, "d")
    assert effective_mode([("city", ROUTINE), ("d", None)]) == EffectiveMode(ROUTINE, "d")


def test_effective_modes_are_computed_for_a_whole_tree_from_paths() -> None:
    paths = {"sh": "/sh", "a": "/sh/a", "a1": "/sh/a/a1", "b": "/sh/b"}
    eff = effective_by_path(paths, {"a": E3})
    assert {c: (e.mode.key, e.source) for c, e in eff.items()} == {
        "sh": ("routine", "sh"),
        "a": ("III", "a"),
        "a1": ("III", "a"),
        "b": ("routine", "b"),
    }
    mode, source = eff["a1"]  # unpacks as (Mode, source code)
    assert (mode, source) == (E3, "a")


def test_transitions_tell_escalation_de_escalation_and_stand_down() -> None:
    old = {"a": ROUTINE, "b": E2, "c": E2, "d": E3, "e": E4}
    new = {"a": E3, "b": E4, "c": ROUTINE, "d": E3}
    out = {t.code: t.kind for t in mode_transition(old, new)}
    assert out == {
        "a": TransitionKind.ESCALATED,
        "b": TransitionKind.DE_ESCALATED,
        "c": TransitionKind.STOOD_DOWN,
        "e": TransitionKind.STOOD_DOWN,  # missing from the new map counts as routine
    }


def _change(raw: bytes) -> ModeChange:
    return parse_json(ModeChange, raw)


def _locs(raw: bytes) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        _change(raw)
    return [e.loc for e in info.value.errors]


def test_mode_change_accepts_emergency_with_level_and_routine_without() -> None:
    c = _change(b'{"mode": "emergency", "level": "II", "reason": "flood"}')
    assert c.target == E2 and c.reason == "flood"
    c = _change(b'{"mode": "routine", "reason": " water receded "}')
    assert c.target == ROUTINE and c.reason == "water receded"


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"mode": "emergency", "reason": "x"}', "/level"),
        (b'{"mode": "routine", "level": "II", "reason": "x"}', "/level"),
        (b'{"mode": "emergency", "level": "V", "reason": "x"}', "/level"),
        (b'{"mode": "emergency", "level": "II"}', "/reason"),
        (b'{"mode": "emergency", "level": "II", "reason": ""}', "/reason"),
        (b'{"mode": "emergency", "level": "II", "reason": "   "}', "/reason"),
        (b'{"mode": "emergency", "level": "II", "reason": "' + b"x" * 501 + b'"}', "/reason"),
        (b'{"mode": "panic", "reason": "x"}', "/mode"),
        (b'{"mode": "routine", "reason": "x", "colour": "red"}', "/colour"),
        (b'{"mode": "routine", "reason": "x", "version": "1"}', "/version"),
    ],
)
def test_mode_change_rejects_bad_bodies_naming_the_field(raw: bytes, loc: str) -> None:
    assert loc in _locs(raw)


def test_default_policy_table_is_complete_and_valid() -> None:
    assert list(DEFAULT_POLICIES) == list(MODE_KEYS)
    for policy in DEFAULT_POLICIES.values():
        ModePolicy.model_validate(policy.model_dump())  # round-trips through validation
    assert DEFAULT_POLICIES["routine"].callable_pools == (Pool.ON_DUTY_STAFF,)
    assert DEFAULT_POLICIES["routine"].offer_expiry_s >= 3600
    assert DEFAULT_POLICIES["IV"].offer_expiry_s == 600
    assert DEFAULT_POLICIES["I"].offer_expiry_s == 120
    assert DEFAULT_POLICIES["I"].mutual_aid is MutualAid.SIBLINGS_AND_PARENT


def test_default_policies_tighten_monotonically_with_severity() -> None:
    ladder = [DEFAULT_POLICIES[k] for k in MODE_KEYS]
    for lower, higher in pairwise(ladder):
        assert higher.offer_expiry_s < lower.offer_expiry_s
        assert higher.replan_every_s < lower.replan_every_s
        assert higher.max_travel_minutes > lower.max_travel_minutes
        assert higher.suspend_routine_tasks >= lower.suspend_routine_tasks
        if lower is not ladder[0]:  # routine's on-duty staff are a subset of IV's staff
            assert set(lower.callable_pools) < set(higher.callable_pools)
    assert [p.suspend_routine_tasks for p in ladder] == [False, False, False, True, True]
    assert ladder[-1].callable_pools[-1] is Pool.MUTUAL_AID


def test_policy_for_picks_the_stored_policy_and_falls_back_to_the_default() -> None:
    custom = DEFAULT_POLICIES["II"].model_copy(update={"offer_expiry_s": 90})
    assert policy_for(E2, {"II": custom}).offer_expiry_s == 90
    assert policy_for(E1, {"II": custom}) == DEFAULT_POLICIES["I"]


def _policy_body(**change: Any) -> dict[str, Any]:
    return DEFAULT_POLICIES["III"].model_dump(mode="json") | change


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"callable_pools": []}, "/callable_pools"),
        ({"callable_pools": ["staff", "staff"]}, "/callable_pools"),
        ({"callable_pools": ["staff", "friends"]}, "/callable_pools/1"),
        ({"mutual_aid": "siblings"}, "/"),  # mutual aid scope without the mutual_aid pool
        ({"offer_expiry_s": 5}, "/offer_expiry_s"),
        ({"priority_weights": {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}}, "/priority_weights"),
        ({"priority_weights": {"1": 16}}, "/priority_weights"),
        ({"suspend_routine_tasks": "yes"}, "/suspend_routine_tasks"),
        ({"surprise": 1}, "/surprise"),
    ],
)
def test_policy_edits_are_validated(change: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_json(ModePolicyPut, json.dumps(_policy_body(**change)).encode())
    assert loc in [e.loc for e in info.value.errors]


_modes = st.sampled_from([None, ROUTINE, E4, E3, E2, E1])


@given(st.lists(_modes, min_size=1, max_size=6))
def test_effective_mode_is_the_most_severe_on_the_path_and_never_eases_going_down(
    owns: list[Mode | None],
) -> None:
    path = [(f"n{i}", own) for i, own in enumerate(owns)]
    eff = effective_mode(path)
    assert eff.mode == max((o for o in owns if o is not None), default=ROUTINE)
    assert dict(path).get(eff.source) in (eff.mode, None)
    if eff.mode.is_emergency:
        assert dict(path)[eff.source] == eff.mode
    for depth in range(1, len(path)):
        assert effective_mode(path[: depth + 1]).mode >= effective_mode(path[:depth]).mode
