"""A report as one self-contained HTML page: the verdict, a table of every feature's
test, and per feature its reference and current distributions as inline SVG bars.

Everything from the document is escaped: feature and category names come from senders.
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT = 520, 160
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#f58518"


def _label(distribution: dict[str, Any], index: int) -> str:
    if distribution.get("kind") == "numeric":
        low, high = distribution["bins"][index]
        return f"{low:.4g} - {high:.4g}"
    return str(distribution["categories"][index])


def _chart(distribution: dict[str, Any]) -> str:
    reference = distribution.get("reference") or []
    current = distribution.get("current") or []
    if not reference:
        return "<p>no distribution</p>"
    count = len(reference)
    top = max([*reference, *current, 1e-9])
    slot = WIDTH / count
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 20}" '
        f'role="img" aria-label="reference and current distribution">'
    ]
    for index in range(count):
        x = index * slot
        label = escape(_label(distribution, index))
        for offset, values, colour, what in (
            (0.0, reference, REFERENCE_COLOUR, "reference"),
            (bar, current, CURRENT_COLOUR, "current"),
        ):
            share = values[index] if index < len(values) else 0.0
            height = HEIGHT * share / top
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{label}: {what} '
                f"{share:.1%}</title></rect>"
            )
    parts.append(f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#333"/></svg>')
    return "".join(parts)


def report_html(document: dict[str, Any]) -> str:
    """The report `document` (as `reports.report_document` makes it) as an HTML page."""
    title = f"Drift report: {document['model']} v{document['version']} in {document['environment']}"
    window = document["window"]
    rows = []
    sections = []
    for feature in document["features"]:
        name = escape(str(feature["feature"]))
        verdict = "drifted" if feature["drifted"] else "stable"
        rows.append(
            f'<tr class="{verdict}"><td>{name}</td><td>{escape(str(feature["kind"]))}</td>'
            f"<td>{escape(str(feature['method']))}</td><td>{_fmt(feature['score'])}</td>"
            f"<td>{_fmt(feature['threshold'])}</td><td>{_fmt(feature['psi'])}</td>"
            f"<td>{verdict}</td><td>{escape(str(feature.get('note') or ''))}</td></tr>"
        )
        sections.append(
            f"<section><h3>{name} <small>({verdict})</small></h3>"
            f"{_chart(feature['distribution'])}</section>"
        )
    drifted = "drifted" if document["dataset_drifted"] else "not drifted"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}tr.drifted{background:#fde2e1}"
        f".ref{{color:{REFERENCE_COLOUR}}}.cur{{color:{CURRENT_COLOUR}}}"
        "</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<p>Window {escape(str(window['start']))} - {escape(str(window['end']))}: "
        f"{window['samples']} samples against {document['reference']['rows']} reference rows. "
        f"Dataset {drifted}: {_fmt(document['drift_share'])} of features drifted; "
        f"severity {escape(str(document.get('severity') or 'none'))}"
        f"{', alert sent' if document.get('alert_fired') else ''}.</p>"
        f'<p><span class="ref">■ reference</span> <span class="cur">■ current</span></p>'
        "<table><thead><tr><th>feature</th><th>kind</th><th>test</th><th>score</th>"
        "<th>threshold</th><th>PSI</th><th>verdict</th><th>note</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + "".join(sections)
        + "</body></html>"
    )


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"
