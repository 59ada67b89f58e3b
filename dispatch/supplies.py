"""Supplies: the item catalogue, depots and the stock they hold. Pure models and rules, no I/O.

Stock is counted in whole units of the item's ``unit``. A stock line has ``quantity`` on hand and
``reserved`` (held for incidents by the engine); ``available = quantity - reserved``. Neither may
go negative and ``reserved`` never exceeds ``quantity`` — enforced here for clear messages and by
CHECK constraints in the database as the final guard.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from dispatch.errors import Conflict
from dispatch.geo import point
from dispatch.validation import Code, Id, Latitude, Longitude, Name, Slug, Strict

ItemCode = Slug
Unit = Annotated[str, StringConstraints(min_length=1, max_length=32, strip_whitespace=True)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000_000)]
Delta = Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
Reason = Annotated[str, StringConstraints(max_length=500, strip_whitespace=True)]
RequiredReason = Annotated[
    str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)
]


class Location(Strict):
    """A point given as latitude/longitude in degrees (WGS 84)."""

    lat: Latitude
    lon: Longitude


class ItemCreate(Strict):
    """Body of ``POST /v1/items``: a kind of supply (``water_bottle``, counted in ``bottle``)."""

    code: ItemCode
    name: Name
    unit: Unit


class DepotCreate(Strict):
    """Body of ``POST /v1/depots``; ``id`` is generated when omitted, ``stock`` sets opening
    quantities (recorded as ``initial`` movements)."""

    id: Id | None = None
    name: Name
    jurisdiction: Code
    location: Location
    active: bool = True
    stock: dict[ItemCode, Quantity] = Field(default_factory=dict)


class DepotPatch(Strict):
    """Body of ``PATCH /v1/depots/{id}``: only the fields given change. Stock changes go through
    the stock endpoints, which keep the movement ledger."""

    name: Name | None = None
    jurisdiction: Code | None = None
    location: Location | None = None
    active: bool | None = None
    version: int | None = None


class StockSet(Strict):
    """Body of ``PUT /v1/depots/{id}/stock/{item}``: the counted quantity on hand.

    ``version`` (or ``If-Match``) is the stock line's version; a stale one is refused.
    """

    quantity: Quantity
    reason: Reason = ""
    version: int | None = None


class StockAdjust(Strict):
    """Body of ``POST /v1/depots/{id}/stock:adjust``: add (or with a negative delta, remove)."""

    item: ItemCode
    delta: Delta
    reason: RequiredReason

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


def check_quantity(item: str, quantity: int, reserved: int) -> None:
    """Raise :class:`Conflict` unless ``quantity`` can stand with ``reserved`` held."""
    if quantity < 0 or quantity < reserved:
        raise Conflict(
            f"stock of {item!r} cannot be {quantity}: it must stay >= 0 and >= reserved "
            f"({reserved})",
            extra={"item": item, "requested_quantity": quantity, "reserved": reserved},
        )


def adjusted(item: str, quantity: int, reserved: int, delta: int) -> int:
    """The quantity after adding ``delta``; :class:`Conflict` if that leaves too little."""
    new = quantity + delta
    if new < 0 or new < reserved:
        raise Conflict(
            f"cannot take {-delta} of {item!r}: {quantity - reserved} available "
            f"({quantity} on hand, {reserved} reserved)",
            extra={
                "item": item,
                "delta": delta,
                "quantity": quantity,
                "reserved": reserved,
                "available": quantity - reserved,
            },
        )
    return new


def item_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """Public representation of an item row."""
    return {"code": row["code"], "name": row["name"], "unit": row["unit"]}


def stock_line(row: dict[str, Any]) -> dict[str, Any]:
    """One stock line as shown inside a depot (without the depot and item keys)."""
    return {
        "quantity": row["quantity"],
        "reserved": row["reserved"],
        "available": row["quantity"] - row["reserved"],
        "version": row["version"],
    }


def stock_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stock line on its own (``/v1/depots/{id}/stock/{item}`` and the audit log)."""
    return {"depot": row["depot_id"], "item": row["item"], **stock_line(row)}


def depot_to_json(row: dict[str, Any], stock: list[dict[str, Any]]) -> dict[str, Any]:
    """Public representation of a depot row with its stock lines embedded."""
    return {
        "id": row["id"],
        "name": row["name"],
        "jurisdiction": row["jurisdiction_code"],
        "location": {"lat": row["lat"], "lon": row["lon"]},
        "geometry": point(row["lat"], row["lon"]),
        "active": row["active"],
        "stock": {s["item"]: stock_line(s) for s in stock},
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
