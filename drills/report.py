"""After-action report files: ``report.json`` (every figure, deterministic), ``run.json``
(wall-clock figures of this run), ``report.html`` (tables and embedded PNG plots).

``report.json`` holds nothing that depends on the machine or the wall clock, so two runs of
the same scenario and seed give byte-identical files; solver durations and wall time live in
``run.json`` and in the HTML only.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["canonical_json", "render_html", "write_report"]

_COLOURS = {"1": "#c0392b", "2": "#e67e22", "3": "#f1c40f", "4": "#2980b9", "5": "#7f8c8d"}


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, two-space indent, UTF-8."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_report(report: dict[str, Any], run: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Write the report files into ``directory`` (created if needed); returns their paths.

    ``report.json`` (every figure), ``run.json`` (wall-clock figures of this run, which vary
    between runs), ``report.html`` (plots embedded) and ``coverage.png`` (the coverage plot on
    its own, for pages that link to a drill's outcome).
    """
    directory.mkdir(parents=True, exist_ok=True)
    out = {
        "json": directory / "report.json",
        "run": directory / "run.json",
        "html": directory / "report.html",
        "coverage": directory / "coverage.png",
    }
    out["json"].write_text(canonical_json(report), "utf-8")
    out["run"].write_text(canonical_json(run), "utf-8")
    out["html"].write_text(render_html(report, run), "utf-8")
    out["coverage"].write_bytes(base64.b64decode(plot_coverage(report)))
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_coverage(report: dict[str, Any]) -> str:
    """Covered share of people demand over time, one line per priority."""
    cov = report["coverage"]
    hours = [t / 3600 for t in cov["t_s"]]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for p, shares in sorted(cov["by_priority"].items()):
        if all(s is None for s in shares):
            continue
        ys = [float("nan") if s is None else 100 * s for s in shares]
        ax.plot(hours, ys, label=f"priority {p}", color=_COLOURS.get(p), linewidth=1.8)
    ax.set_xlabel("hours since start")
    ax.set_ylabel("demand covered (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    else:  # no incident had people demand yet (a drill stopped early)
        ax.text(0.5, 0.5, "no people demand recorded", ha="center", transform=ax.transAxes)
    ax.set_title("Covered people demand over time")
    return _png(fig)


def plot_staffing(report: dict[str, Any]) -> str:
    """Minutes from report to first offer and to full staffing, per incident, by priority."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for key, marker, label in (
        ("first_offer_s", "o", "first offer"),
        ("full_staffing_s", "s", "fully staffed"),
    ):
        xs, ys, cs = [], [], []
        for k, inc in enumerate(report["incidents"]):
            if inc[key] is not None:
                xs.append(inc["priority"] + (-0.12 if marker == "o" else 0.12) + (k % 5) * 0.02)
                ys.append(inc[key] / 60)
                cs.append(_COLOURS.get(str(inc["priority"]), "#333"))
        ax.scatter(
            xs,
            ys,
            marker=marker,
            c=cs,
            s=22,
            alpha=0.8,
            label=label,
            edgecolors="k",
            linewidths=0.3,
        )
    ax.set_xlabel("priority")
    ax.set_ylabel("minutes after report")
    ax.set_xticks([1, 2, 3, 4, 5])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Time to first offer (○) and to full staffing (□)")
    return _png(fig)


def plot_offers(report: dict[str, Any]) -> str:
    """Offer outcomes."""
    o = report["offers"]
    labels = ["accepted", "declined", "expired", "withdrawn"]
    values = [o["accepted"], o["declined"], o["expired"], o["withdrawn_unanswered"]]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(labels, values, color=["#27ae60", "#e67e22", "#c0392b", "#95a5a6"])
    ax.set_title(f"Offer outcomes ({o['count']} offers)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_load(report: dict[str, Any]) -> str:
    """Histogram of hours worked per deployed person."""
    fig, ax = plt.subplots(figsize=(4, 3))
    hours = report.get("load_hours") or [0.0]
    ax.hist(hours, bins=20, color="#2980b9")
    ax.set_xlabel("hours worked")
    ax.set_ylabel("people")
    ax.set_title(f"Load per person (Jain {report['load']['jain_hours']})")
    return _png(fig)


def plot_unmet(report: dict[str, Any]) -> str:
    """Unmet people demand by skill, in slot-hours."""
    data = report["unmet"]["slot_hours_by_skill"]
    fig, ax = plt.subplots(figsize=(4, 3))
    if data:
        ax.barh(list(data), list(data.values()), color="#c0392b")
    ax.set_xlabel("slot-hours unmet")
    ax.set_title("Unmet demand by skill")
    return _png(fig)


def plot_solve(run: dict[str, Any]) -> str:
    """Solver milliseconds per re-plan over simulated time (wall-clock figures)."""
    fig, ax = plt.subplots(figsize=(8, 2.6))
    pts = run.get("plans") or []
    ax.plot([p["at_s"] / 3600 for p in pts], [p["seconds"] * 1000 for p in pts], ".", markersize=3)
    ax.set_xlabel("hours since start")
    ax.set_ylabel("solver ms")
    ax.set_title(f"Re-plans: {len(pts)} (solver time per re-plan, this machine)")
    ax.grid(alpha=0.3)
    return _png(fig)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "met" if v else "NOT met"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _mins(s: float | None) -> str:
    return "—" if s is None else f"{s / 60:.1f}"


def render_html(report: dict[str, Any], run: dict[str, Any]) -> str:
    """A self-contained HTML page (plots embedded as base64 PNG)."""
    sc = report["scenario"]
    s = report["summary"]
    img = '<img alt="{alt}" src="data:image/png;base64,{data}">'
    objectives = _table(
        [
            [
                o["text"],
                o["measured"],
                "✔ met" if o["met"] else ("—" if o["met"] is None else "✘ not met"),
            ]
            for o in report["objectives"]
        ],
        ["objective", "measured", "result"],
    )
    prio = _table(
        [
            [
                p,
                v["incidents"],
                v["people_slots"],
                _mins(v["first_offer_s"]["median"]),
                _mins(v["full_staffing_s"]["median"]),
                _mins(v["full_staffing_s"]["p90"]),
                v["never_fully_staffed"],
            ]
            for p, v in report["by_priority"].items()
        ],
        [
            "priority",
            "incidents",
            "slots",
            "first offer (median min)",
            "full staffing (median min)",
            "full staffing (p90 min)",
            "never fully staffed",
        ],
    )
    incidents = _table(
        [
            [
                i["id"],
                i["priority"],
                i["jurisdiction"],
                _mins(i["reported_s"]),
                i["people_slots"],
                i["slots_staffed"],
                _mins(i["first_offer_s"]),
                _mins(i["full_staffing_s"]),
                i["offers"],
                i["declined"],
                i["expired"],
            ]
            for i in report["incidents"]
        ],
        [
            "incident",
            "P",
            "jurisdiction",
            "reported (min)",
            "slots",
            "staffed",
            "first offer (min)",
            "full (min)",
            "offers",
            "declined",
            "expired",
        ],
    )
    o = report["offers"]
    offers = _table(
        [
            ["offers", o["count"]],
            ["accept rate", o["accept_rate"]],
            ["decline rate", o["decline_rate"]],
            ["expiry rate", o["expiry_rate"]],
            [
                "answer time median / p90 (s)",
                f"{_fmt(o['answer_s']['median'])} / {_fmt(o['answer_s']['p90'])}",
            ],
            *[[f"responders: {k}", v] for k, v in o["responders"].items()],
        ],
        ["measure", "value"],
    )
    items = _table(
        [
            [k, v["requested"], v["reserved"], v["short"]]
            for k, v in report["unmet"]["items"].items()
        ],
        ["item", "requested", "reserved", "short"],
    )
    ld = report["load"]
    load = _table(
        [
            ["people deployed", ld["people_deployed"]],
            ["total hours", ld["total_hours"]],
            [
                "hours per person median / max",
                f"{_fmt(ld['hours']['median'])} / {_fmt(ld['hours']['max'])}",
            ],
            ["Jain index (hours)", ld["jain_hours"]],
            ["Gini (hours)", ld["gini_hours"]],
        ],
        ["measure", "value"],
    )
    rp = report["replans"]
    ss = run["solve_seconds"]
    replans = _table(
        [
            ["re-plans", rp["count"]],
            ["by trigger", ", ".join(f"{k}: {v}" for k, v in rp["by_trigger"].items())],
            ["methods", ", ".join(f"{k}: {v}" for k, v in rp["by_method"].items())],
            ["offers made / withdrawn", f"{rp['offers_made']} / {rp['offers_withdrawn']}"],
            [
                "solver ms per re-plan median / p90 / max (this run)",
                f"{_fmt(ss['median'])} / {_fmt(ss['p90'])} / {_fmt(ss['max'])}",
            ],
            ["wall time of the drill (s)", run["wall_seconds"]],
        ],
        ["measure", "value"],
    )
    injects = _table(
        [
            [
                _mins(i["at_s"]),
                i["type"],
                "ok" if i["ok"] else f"failed: {i.get('error')}",
                ", ".join(
                    f"{k}={v}" for k, v in i.items() if k not in ("at_s", "type", "ok", "error")
                ),
            ]
            for i in report["injects"]
        ],
        ["at (min)", "inject", "result", "detail"],
    )
    m = report["messages"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>After-action report: {html.escape(sc["name"])}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222;padding:0 1em}}
table{{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} th{{background:#f4f4f4}}
.exercise{{background:#fdf2e9;border:2px solid #e67e22;padding:.5em 1em;font-weight:600}}
img{{max-width:100%}} .row{{display:flex;gap:1em;flex-wrap:wrap}}
</style></head><body>
<p class="exercise">EXERCISE — drill report. No live data was changed; every message was
exercise-marked ({m["exercise_marked"]} of {m["count"]}).</p>
<h1>After-action report: {html.escape(sc["name"])}</h1>
<p>{html.escape(sc["description"])}</p>
<p>Start {html.escape(sc["start"])}, {sc["duration_s"] / 3600:.1f} h simulated, seed {sc["seed"]},
policy <b>{html.escape(sc["policy"])}</b>, roster {html.escape(json.dumps(sc["roster"]))}.
{s["incidents"]} incidents, {s["people_slots"]} people slots demanded, {s["offers"]} offers,
{s["replans"]} re-plans, {s["messages"]} messages.</p>
<h2>Objectives ({s["objectives_met"]} of {s["objectives"]} met)</h2>{objectives}
<h2>Covered demand over time</h2>{img.format(alt="coverage", data=plot_coverage(report))}
<h2>Staffing by priority</h2>{prio}{img.format(alt="staffing", data=plot_staffing(report))}
<h2>Offers</h2><div class="row"><div>{offers}</div>
<div>{img.format(alt="offers", data=plot_offers(report))}</div></div>
<h2>Unmet demand</h2><div class="row"><div>{img.format(alt="unmet", data=plot_unmet(report))}</div>
<div>{items}</div></div>
<h2>Load and fairness</h2><div class="row"><div>{load}</div>
<div>{img.format(alt="load", data=plot_load(report))}</div></div>
<h2>Re-plans</h2>{replans}{img.format(alt="solve", data=plot_solve(run))}
<h2>Incidents</h2>{incidents}
<h2>Timeline of injects</h2>{injects}
</body></html>
"""
