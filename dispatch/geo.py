"""GeoJSON shapes used at the edges (jurisdiction boundaries, map output)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from dispatch.validation import Strict

Position = Annotated[
    tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]],
    Field(description="[longitude, latitude] (RFC 7946 order)"),
]


def _closed_ring(ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(ring) < 4:
        raise ValueError("a linear ring needs at least four positions")
    if ring[0] != ring[-1]:
        raise ValueError("a linear ring must end where it starts")
    return ring


Ring = Annotated[list[Position], AfterValidator(_closed_ring)]


class Polygon(Strict):
    """A GeoJSON Polygon: an outer ring and optional holes."""

    type: Literal["Polygon"]
    coordinates: Annotated[list[Ring], Field(min_length=1)]


class MultiPolygon(Strict):
    """A GeoJSON MultiPolygon."""

    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[Annotated[list[Ring], Field(min_length=1)]], Field(min_length=1)]


Boundary = Annotated[Polygon | MultiPolygon, Field(discriminator="type")]


def point(lat: float, lon: float) -> dict[str, object]:
    """A GeoJSON Point geometry."""
    return {"type": "Point", "coordinates": [lon, lat]}
