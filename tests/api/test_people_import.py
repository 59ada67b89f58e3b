"""Bulk roster import through ``POST /v1/people:import`` and ``muster import people``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.api.test_jurisdictions_api import create_tree
from tests.conftest import bearer, make_token

HEADER = "id,kind,name,jurisdiction,home_lat,home_lon,phone,email,skills,certifications,availability,timezone,reserve\n"


def csv_row(i: int, jurisdiction: str = "pd-lujiazui", lat: str = "31.2") -> str:
    return (
        f"v{i:05d},volunteer,Person {i},{jurisdiction},{lat},121.5,+86138{i:08d},"
        f"v{i}@example.org,first_aid:3;driver:2@2030-01-31,first_aid@2030-12-31,"
        f'"mon-fri 08:00-18:00; sat 22:00-06:00",Asia/Shanghai,false\n'
    )


def json_person(i: int, jurisdiction: str = "pd-lujiazui") -> dict[str, Any]:
    return {
        "id": f"j{i:05d}",
        "kind": "staff",
        "name": f"Json {i}",
        "jurisdiction": jurisdiction,
        "home": {"lat": 31.2, "lon": 121.5},
        "skills": [{"name": "radio", "level": 2}],
    }


async def post_csv(client: Any, token: str, text: str, mode: str | None = None) -> Any:
    return await client.post(
        "/v1/people:import",
        data=text.encode(),
        params={"mode": mode} if mode else {},
        headers=bearer(token) | {"Content-Type": "text/csv"},
    )


async def count(client: Any, admin: str) -> int:
    n, cursor = 0, None
    while True:
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        body = await (await client.get("/v1/people", params=params, headers=bearer(admin))).json()
        n += len(body["items"])
        cursor = body["next"]
        if cursor is None:
            return n


async def test_csv_import_creates_everyone_with_parsed_fields(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    r = await post_csv(client, admin_token, HEADER + csv_row(1) + csv_row(2))
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["imported"] == 2 and out["invalid"] == 0 and out["import_id"].startswith("imp-")
    p = await (await client.get("/v1/people/v00001", headers=bearer(admin_token))).json()
    assert p["contacts"]["email"] == "v1@example.org"
    assert p["skills"][1] == {"name": "driver", "level": 2, "expires_on": "2030-01-31"}
    assert p["availability"]["timezone"] == "Asia/Shanghai"
    assert len(p["availability"]["weekly"]) == 6
    r = await client.get(
        "/v1/audit", params={"object_type": "person_import"}, headers=bearer(admin_token)
    )
    (entry,) = (await r.json())["items"]
    assert entry["after"]["count"] == 2 and entry["after"]["ids"] == ["v00001", "v00002"]


async def test_csv_with_one_bad_row_imports_nothing_and_names_the_row(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    text = HEADER + csv_row(1) + csv_row(2, lat="95") + csv_row(3)
    r = await post_csv(client, admin_token, text)
    assert r.status == 422
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["invalid_rows"] == [3]
    assert [e["loc"] for e in body["errors"]] == ["/rows/3/home_lat"]
    assert "nothing was imported" in body["detail"]
    assert await count(client, admin_token) == 0


async def test_json_with_one_bad_row_imports_nothing_and_names_the_row(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    people = [json_person(1), json_person(2) | {"reserve": "yes"}, json_person(3)]
    r = await client.post("/v1/people:import", json={"people": people}, headers=bearer(admin_token))
    assert r.status == 422
    body = await r.json()
    assert [e["loc"] for e in body["errors"]] == ["/rows/2/reserve"]
    assert await count(client, admin_token) == 0


async def test_partial_mode_imports_good_rows_and_reports_bad_ones(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    r = await client.post("/v1/people", json=json_person(9), headers=bearer(admin_token))
    assert r.status == 201
    people = [
        json_person(1),
        json_person(2, jurisdiction="atlantis"),
        json_person(9),  # exists already
        json_person(1) | {"name": "Twin"},  # duplicate inside the file
        json_person(5),
    ]
    r = await client.post(
        "/v1/people:import",
        params={"mode": "partial"},
        json=people,
        headers=bearer(admin_token),
    )
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["imported"] == 2 and out["invalid_rows"] == [2, 3, 4]
    assert [e["loc"] for e in out["errors"]] == ["/rows/2/jurisdiction", "/rows/3/id", "/rows/4/id"]
    assert await count(client, admin_token) == 3
    p = await (await client.get("/v1/people/j00001", headers=bearer(admin_token))).json()
    assert p["name"] == "Json 1"


async def test_duplicate_ids_in_file_or_in_database_fail_the_whole_import(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    r = await post_csv(client, admin_token, HEADER + csv_row(1) + csv_row(2) + csv_row(1))
    assert r.status == 422
    assert [e["loc"] for e in (await r.json())["errors"]] == ["/rows/4/id"]
    assert (await post_csv(client, admin_token, HEADER + csv_row(1))).status == 200
    r = await post_csv(client, admin_token, HEADER + csv_row(2) + csv_row(1))
    assert r.status == 422
    body = await r.json()
    assert [e["loc"] for e in body["errors"]] == ["/rows/3/id"]
    assert await count(client, admin_token) == 1


async def test_coordinator_cannot_import_into_a_foreign_district(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await create_tree(client, admin_token)
    coord = await make_token(db_dsn, "coordinator", "pd")
    r = await post_csv(client, coord, HEADER + csv_row(1) + csv_row(2, jurisdiction="hp"))
    assert r.status == 403
    assert [e["loc"] for e in (await r.json())["errors"]] == ["/rows/3/jurisdiction"]
    assert await count(client, admin_token) == 0
    r = await post_csv(client, coord, HEADER + csv_row(1))
    assert r.status == 200
    observer = await make_token(db_dsn, "observer", "pd")
    assert (await post_csv(client, observer, HEADER + csv_row(3))).status == 403


async def test_whole_file_problems_are_refused(client: Any, admin_token: str) -> None:
    await create_tree(client, admin_token)
    h = bearer(admin_token)
    r = await post_csv(client, admin_token, "kind,name,colour\n")
    assert r.status == 422 and r.content_type == "application/problem+json"
    r = await client.post(
        "/v1/people:import", data=b"[{", headers=h | {"Content-Type": "application/json"}
    )
    assert r.status == 422
    r = await client.post("/v1/people:import", data=b"x", headers=h | {"Content-Type": "text/xml"})
    assert r.status == 415
    r = await post_csv(client, admin_token, HEADER + csv_row(1), mode="sometimes")
    assert r.status == 422
    assert await count(client, admin_token) == 0


async def test_two_thousand_rows_import_in_one_request(client: Any, admin_token: str) -> None:
    await create_tree(client, admin_token)
    text = HEADER + "".join(csv_row(i) for i in range(2000))
    r = await post_csv(client, admin_token, text)
    assert r.status == 200, await r.text()
    assert (await r.json())["imported"] == 2000
    assert await count(client, admin_token) == 2000
    r = await client.get(
        "/v1/people",
        params={"skill": "first_aid", "jurisdiction": "pd", "limit": "5"},
        headers=bearer(admin_token),
    )
    body = await r.json()
    assert len(body["items"]) == 5 and body["next"] is not None


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_cli_imports_a_file_into_the_configured_database(
    client: Any, admin_token: str, db_dsn: str, tmp_path: Path, fmt: str, monkeypatch: Any
) -> None:
    import asyncio

    from api.cli import main

    await create_tree(client, admin_token)
    path = tmp_path / f"people.{fmt}"
    if fmt == "csv":
        path.write_text(HEADER + csv_row(1) + csv_row(2))
    else:
        path.write_text(json.dumps([json_person(1), json_person(2)]))
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    rc = await asyncio.to_thread(main, ["import", "people", str(path)])
    assert rc == 0
    bad = tmp_path / f"bad.{fmt}"
    if fmt == "csv":
        bad.write_text(HEADER + csv_row(7) + csv_row(8, jurisdiction="atlantis"))
    else:
        bad.write_text(json.dumps([json_person(7), json_person(8, jurisdiction="atlantis")]))
    rc = await asyncio.to_thread(main, ["import", "people", str(bad), "--format", fmt])
    assert rc == 2
    rc = await asyncio.to_thread(main, ["import", "people", str(bad), "--partial"])
    assert rc == 1
    con = await asyncpg.connect(db_dsn)
    try:
        ids = [r["id"] for r in await con.fetch("SELECT id FROM people ORDER BY id")]
    finally:
        await con.close()
    prefix = "v0000" if fmt == "csv" else "j0000"
    assert ids == [f"{prefix}1", f"{prefix}2", f"{prefix}7"]
