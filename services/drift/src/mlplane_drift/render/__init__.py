"""Reports for people: an HTML page with inline SVG charts, or one PNG (matplotlib, Agg)."""

from mlplane_drift.render.html import report_html
from mlplane_drift.render.png import report_png

__all__ = ["report_html", "report_png"]
