"""Snapshot validation and the ``muster solve`` command."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from solver import SnapshotError, parse_snapshot
from solver.cli import main


def snapshot(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "people": [{"id": "p1", "lat": 31.23, "lon": 121.47, "skills": ["a"], "hours_left": 6}],
        "incidents": [
            {
                "id": "i1",
                "lat": 31.25,
                "lon": 121.5,
                "priority": 1,
                "demands": [{"skill": "a", "count": 2}],
            }
        ],
    }
    base.update(over)
    return base


def paths(data: Any) -> list[str]:
    with pytest.raises(SnapshotError) as err:
        parse_snapshot(data)
    return [p for p, _ in err.value.errors]


def test_defaults_are_filled_in() -> None:
    snap = parse_snapshot(snapshot())
    assert snap.travel.max_minutes == 45
    assert snap.travel.speed_kmh == 30
    assert snap.reassign_penalty_minutes == 10
    assert snap.weight(1) == 16 and snap.weight(5) == 1
    assert snap.incidents[0].demands[0].min == 1


def test_bad_field_is_named_by_json_path() -> None:
    data = snapshot()
    data["people"][0]["lat"] = 123
    assert paths(data) == ["$.people[0].lat"]


def test_unknown_fields_are_rejected() -> None:
    data = snapshot()
    data["incidents"][0]["demands"][0]["colour"] = "red"
    assert paths(data) == ["$.incidents[0].demands[0].colour"]


def test_wrong_version_and_strict_types_are_rejected() -> None:
    assert "$.version" in paths(snapshot(version=2))
    data = snapshot()
    data["people"][0]["hours_left"] = "6"
    assert paths(data) == ["$.people[0].hours_left"]


def test_min_above_count_is_rejected() -> None:
    data = snapshot()
    data["incidents"][0]["demands"][0]["min"] = 3
    assert paths(data) == ["$.incidents[0].demands[0]"]


def test_dangling_references_are_rejected() -> None:
    data = snapshot(previous=[{"person": "ghost", "incident": "i1", "skill": "a"}])
    data["incidents"][0]["forbidden"] = ["nobody"]
    data["travel"] = {"matrix": {"p1": {"i9": 3.0}}}
    assert sorted(paths(data)) == [
        "$.incidents[0].forbidden[0]",
        "$.previous[0].person",
        "$.travel.matrix.p1.i9",
    ]


def test_duplicate_ids_and_lines_are_rejected() -> None:
    data = snapshot()
    data["people"].append(dict(data["people"][0]))
    data["incidents"][0]["demands"].append({"skill": "a", "count": 1})
    assert sorted(paths(data)) == ["$.incidents[0].demands[1].skill", "$.people[1].id"]


def test_lock_on_a_missing_line_is_rejected() -> None:
    data = snapshot(previous=[{"person": "p1", "incident": "i1", "skill": "b", "locked": True}])
    assert paths(data) == ["$.previous[0].skill"]


def test_invalid_json_text_is_an_error_at_the_root() -> None:
    assert paths("{not json") == ["$"]


def test_cli_prints_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "snap.json"
    f.write_text(json.dumps(snapshot()))
    assert main([str(f), "--time-limit", "2", "--seed", "3"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["version"] == 1
    assert [a["person"] for a in plan["assignments"]] == ["p1"]
    assert plan["unmet"] == [{"incident": "i1", "missing": 1, "skill": "a"}]
    assert plan["stats"]["seed"] == 3


def test_cli_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(snapshot())))
    assert main(["-"]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["status"] == "optimal"


def test_cli_malformed_snapshot_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = snapshot()
    data["incidents"][0]["priority"] = 9
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data))
    assert main([str(f)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "$.incidents[0].priority" in captured.err


def test_cli_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
