"""Bulk roster import: parsed rows (see :mod:`dispatch.roster_files`) → COPY into a temp table →
one INSERT, in one transaction with one audit entry (``person_import``) listing the imported ids.

All-or-nothing by default: any bad row fails the whole import with per-row errors and writes
nothing. In partial mode the good rows are imported and the bad ones reported.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import AlreadyExists, Conflict, Forbidden, ValidationFailed
from dispatch.roster_files import (
    MAX_REPORTED_ERRORS,
    STAGE_COLUMNS,
    Parsed,
    _summary,
    parse,
    parse_csv,
    parse_json,
)
from dispatch.storage import audit_log
from dispatch.storage.queries import queries

Q = queries("people")

__all__ = ["Parsed", "import_people", "parse", "parse_csv", "parse_json"]


async def import_people(
    con: asyncpg.Connection,
    who: Principal | None,
    ctx: AuditContext,
    parsed: Parsed,
    *,
    partial: bool = False,
) -> dict[str, Any]:
    """Write the parsed rows in one transaction; ``who=None`` is the local CLI (unscoped).

    All-or-nothing unless ``partial``: any bad row raises :class:`ValidationFailed` (or
    :class:`Forbidden` when a row lies outside the caller's scope) and nothing is written.
    """
    if who is not None:
        who.require("person", Action.WRITE)
    scope = who.scope_path if who is not None else None
    async with con.transaction():
        await con.execute(Q.create_import_table)
        await con.copy_records_to_table(
            "people_import", records=parsed.records, columns=STAGE_COLUMNS
        )
        forbidden = False
        for p in await con.fetch(Q.import_problems, scope):
            if p["unknown_jurisdiction"]:
                parsed.fail(
                    p["row_no"], "jurisdiction", f"unknown jurisdiction {p['jurisdiction_code']!r}"
                )
            elif p["out_of_scope"]:
                forbidden = True
                parsed.fail(p["row_no"], "jurisdiction", "outside this token's scope", "forbidden")
            if p["exists"]:
                parsed.fail(p["row_no"], "id", f"person {p['id']!r} already exists", "duplicate")
        parsed.errors.sort(key=lambda e: int(e.loc.split("/")[2]))
        summary = _summary(parsed, partial)
        if parsed.bad_rows and not partial:
            detail = (
                f"{len(parsed.bad_rows)} of {parsed.total} rows are invalid; nothing was imported"
            )
            exc_type = Forbidden if forbidden else ValidationFailed
            raise exc_type(detail, errors=parsed.errors[:MAX_REPORTED_ERRORS], extra=summary)
        try:
            async with con.transaction():
                status = await con.execute(Q.import_insert, sorted(parsed.bad_rows))
        except asyncpg.UniqueViolationError:
            raise AlreadyExists("a person in the file was created concurrently; retry") from None
        except asyncpg.ForeignKeyViolationError:
            raise Conflict("a jurisdiction was deleted during the import; retry") from None
        imported = int(status.split()[-1])
        ids = [r[1] for r in parsed.records if r[0] not in parsed.bad_rows]
        import_id = "imp-" + uuid.uuid4().hex[:12]
        await audit_log.record(
            con,
            ctx,
            AuditEntry(
                "import",
                "person_import",
                import_id,
                None,
                {"format": parsed.format, "mode": summary["mode"], "count": imported, "ids": ids},
            ),
        )
    return {
        "import_id": import_id,
        **summary,
        "imported": imported,
        "errors": [e.as_dict() for e in parsed.errors[:MAX_REPORTED_ERRORS]],
    }
