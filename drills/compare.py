"""Two after-action reports side by side (``muster drill compare A.json B.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["compare", "key_figures", "load_report"]


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``report.json``; a file that is not a drill report is a :class:`ValueError`."""
    data = json.loads(Path(path).read_text("utf-8"))
    if not isinstance(data, dict) or data.get("format") != "muster-drill-report/1":
        raise ValueError(f"{path}: not a Muster drill report (report.json)")
    return data


def key_figures(r: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``(label, value, better)`` rows; ``better`` is ``up``, ``down`` or ``""`` (no direction)."""
    s, o, ld = r["summary"], r["offers"], r["load"]
    rows: list[tuple[str, Any, str]] = [
        ("scenario", r["scenario"]["name"], ""),
        ("policy", r["scenario"]["policy"], ""),
        ("seed", r["scenario"]["seed"], ""),
        ("incidents", s["incidents"], ""),
        ("people slots demanded", s["people_slots"], ""),
        ("slots staffed", s["slots_staffed"], "up"),
        ("offers", s["offers"], "down"),
        ("accept rate", o["accept_rate"], "up"),
        ("decline rate", o["decline_rate"], "down"),
        ("expiry rate", o["expiry_rate"], "down"),
        ("answer time median (s)", o["answer_s"]["median"], "down"),
        ("first offer median (min)", _min(s["median_first_offer_s"]), "down"),
        ("full staffing median (min)", _min(s["median_full_staffing_s"]), "down"),
    ]
    for p, v in r["by_priority"].items():
        rows.append(
            (f"P{p} full staffing median (min)", _min(v["full_staffing_s"]["median"]), "down")
        )
        rows.append((f"P{p} never fully staffed", v["never_fully_staffed"], "down"))
    for p, v in r["unmet"]["slot_hours_by_skill"].items():
        rows.append((f"unmet slot-hours: {p}", v, "down"))
    rows += [
        ("people deployed", ld["people_deployed"], ""),
        ("total hours worked", ld["total_hours"], ""),
        ("Jain fairness (hours)", ld["jain_hours"], "up"),
        ("Gini (hours)", ld["gini_hours"], "down"),
        ("re-plans", r["replans"]["count"], ""),
        ("offers withdrawn by re-plans", r["replans"]["offers_withdrawn"], "down"),
        ("messages", r["messages"]["count"], ""),
        ("objectives met", f"{s['objectives_met']}/{s['objectives']}", ""),
    ]
    for obj in r["objectives"]:
        mark = "met" if obj["met"] else ("n/a" if obj["met"] is None else "NOT met")
        rows.append((f"objective: {obj['text']}", f"{obj['measured']} ({mark})", ""))
    return rows


def _min(s: float | None) -> float | None:
    return None if s is None else round(s / 60, 1)


def compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> str:
    """A plain-text table of both runs' key figures, with the difference and which is better."""
    fa, fb = key_figures(a), key_figures(b)
    va = {label: v for label, v, _ in fa}
    vb = {label: v for label, v, _ in fb}
    labels = [label for label, _, _ in fa] + [label for label, _, _ in fb if label not in va]
    better = {label: d for label, _, d in fa} | {label: d for label, _, d in fb}
    width = max(len(x) for x in labels)
    out = [f"{'':<{width}}  {names[0]:>14}  {names[1]:>14}  {'B − A':>10}  better"]
    for label in labels:
        x, y = va.get(label), vb.get(label)
        diff, who = "", ""
        if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            d = y - x
            diff = f"{d:+.4g}"
            if better[label] and d != 0:
                who = names[1] if (d > 0) == (better[label] == "up") else names[0]
        out.append(f"{label:<{width}}  {_s(x):>14}  {_s(y):>14}  {diff:>10}  {who}")
    return "\n".join(out)


def _s(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
