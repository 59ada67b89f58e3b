"""Named SQL queries kept in ``.sql`` files (``-- name: query_name`` starts each one)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class QueryFile:
    """The queries of one file, as attributes: ``queries("people").get_person``."""

    def __init__(self, name: str, text: str) -> None:
        self._name = name
        self._queries: dict[str, str] = {}
        parts = _HEADER.split(text)
        for i in range(1, len(parts), 2):
            qname, body = parts[i], parts[i + 1].strip()
            if qname in self._queries:
                raise ValueError(f"{name}.sql defines {qname} twice")
            self._queries[qname] = body

    def __getattr__(self, item: str) -> str:
        try:
            return self._queries[item]
        except KeyError:
            raise AttributeError(f"{self._name}.sql has no query {item!r}") from None

    def names(self) -> list[str]:
        return sorted(self._queries)


@cache
def queries(name: str) -> QueryFile:
    """Load ``dispatch/storage/queries/<name>.sql`` once."""
    text = (resources.files("dispatch.storage") / "queries" / f"{name}.sql").read_text("utf-8")
    return QueryFile(name, text)
