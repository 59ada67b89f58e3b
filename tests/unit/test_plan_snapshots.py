"""The stored form of plan snapshots gives back exactly what the solver was given."""

from __future__ import annotations

import copy
import json

from dispatch.planning import GroupResult
from dispatch.storage.plans import decode_snapshot, encode_snapshot
from solver.synth import synthetic_city


def _results(seed: int) -> list[GroupResult]:
    snaps = [synthetic_city(60, 4, seed=seed + k, locks=True) for k in range(2)]
    snaps[0]["people"][0]["hours_left"] = 12  # an int where others are floats, and back
    snaps[1]["people"][0]["hours_left"] = 12.0
    snaps[1]["people"][1]["extra"] = "not a planner entry"
    return [GroupResult(f"II@/c/d{k}", "II", s, {}) for k, s in enumerate(snaps)]


def test_snapshots_round_trip_exactly_also_from_the_person_cache() -> None:
    results = _results(1)
    expected = {"groups": [{"key": r.key, "mode": r.mode, "snapshot": r.snapshot} for r in results]}
    for _ in range(2):  # the second time most people come from the cache
        doc = decode_snapshot(encode_snapshot(results))
        assert doc == expected
        assert json.dumps(doc) == json.dumps(expected)  # same types: 12 stays 12, 12.0 stays 12.0
    moved = copy.deepcopy(results)
    moved[0].snapshot["people"][3]["hours_left"] = 0.5
    moved[0].snapshot["people"][4]["skills"] = ["translator"]
    doc = decode_snapshot(encode_snapshot(moved))
    assert doc["groups"][0]["snapshot"]["people"] == moved[0].snapshot["people"]
