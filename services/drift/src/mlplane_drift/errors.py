"""Errors of the drift statistics: all are bad input that no retry can fix."""

from __future__ import annotations

from mlplane_runtime.errors import PROBLEM_BASE_URI, InvalidInput


class DriftInputError(InvalidInput):
    """Data that cannot be profiled or summarised as sent: wrong schema, wrong types, too big."""

    problem_type = f"{PROBLEM_BASE_URI}/drift-invalid-data"
    title = "Invalid drift data"


class SummaryMismatch(DriftInputError):
    """A window summary met a profile (or another summary) it was not built for."""

    problem_type = f"{PROBLEM_BASE_URI}/drift-summary-mismatch"
    title = "Summary does not match the reference profile"


class CorruptSummary(DriftInputError):
    """Stored bytes that are not a profile or summary this version can read."""

    problem_type = f"{PROBLEM_BASE_URI}/drift-corrupt-summary"
    title = "Unreadable drift profile or summary"
