"""Shared validation: a strict base model and the mapping of pydantic errors to domain errors."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from dispatch.errors import FieldError, ValidationFailed

M = TypeVar("M", bound=BaseModel)

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Priority = Annotated[int, Field(ge=1, le=5)]


class Strict(BaseModel):
    """Base for request models: unknown fields and type coercions are rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _loc(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix.rstrip("/")] if prefix else [""]
    parts.extend(str(p) for p in loc)
    return "/".join(parts) or "/"


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Turn pydantic errors into :class:`FieldError`s with JSON-pointer locations."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        out.append(FieldError(loc=_loc(loc, prefix), msg=err["msg"], type=err["type"]))
    return out


def parse(model: type[M], data: Any, *, what: str = "request body") -> M:
    """Validate Python ``data`` (query strings, CSV rows, CLI flags) into ``model``.

    Lax: strings such as ``"3"`` or ``"first_aid"`` convert to the field's type, because these
    sources carry no JSON types. JSON bodies go through :func:`parse_json`, which is strict.
    """
    try:
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        raise ValidationFailed(f"the {what} is invalid", errors=field_errors(exc)) from None


def parse_json(model: type[M], raw: bytes, *, what: str = "request body") -> M:
    """Validate a raw JSON document into ``model`` (JSON-mode strictness: ISO dates allowed)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        if any(e.type == "json_invalid" for e in errors):
            raise ValidationFailed(f"the {what} is not valid JSON", errors=errors) from None
        raise ValidationFailed(f"the {what} is invalid", errors=errors) from None
