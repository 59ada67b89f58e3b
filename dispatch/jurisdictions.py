"""Jurisdictions: the city → district → street → community → grid tree."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from dispatch.geo import Boundary
from dispatch.validation import Code, Latitude, Longitude, Name, Strict


class JurisdictionKind(StrEnum):
    """Level of a node in the tree (depth is free; the kind is a label)."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"


class Centre(Strict):
    """A point given as latitude/longitude in degrees (WGS 84)."""

    lat: Latitude
    lon: Longitude


class JurisdictionCreate(Strict):
    """Body of ``POST /v1/jurisdictions``."""

    code: Code
    parent: Code | None = None
    kind: JurisdictionKind
    name: Name
    centre: Centre | None = None
    boundary: Boundary | None = None


class JurisdictionPatch(Strict):
    """Body of ``PATCH /v1/jurisdictions/{code}``: only the fields given change."""

    name: Name | None = None
    centre: Centre | None = None
    boundary: Boundary | None = None
    version: int | None = None


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """Public representation of a stored jurisdiction row."""
    centre = None
    if row["centre_lat"] is not None:
        centre = {"lat": row["centre_lat"], "lon": row["centre_lon"]}
    return {
        "code": row["code"],
        "parent": row["parent_code"],
        "path": row["path"],
        "kind": row["kind"],
        "name": row["name"],
        "centre": centre,
        "boundary": row["boundary"],
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
