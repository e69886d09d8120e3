"""The scanner's adapter to Trivy: run it, read its reports, keep its database fresh."""

from __future__ import annotations

from .database import DbVersion, cached_db_version, parse_db_metadata
from .errors import TrivyError, TrivyFailed, TrivyReportInvalid, TrivyTimedOut
from .process import ProcessObserver
from .report import TrivyReport, findings_of, parse_report
from .results import ImageScanResult
from .runner import TrivyRunner
from .sources import ImageSource, LayoutImage, RegistryImage

__all__ = [
    "DbVersion",
    "ImageScanResult",
    "ImageSource",
    "LayoutImage",
    "ProcessObserver",
    "RegistryImage",
    "TrivyError",
    "TrivyFailed",
    "TrivyReport",
    "TrivyReportInvalid",
    "TrivyRunner",
    "TrivyTimedOut",
    "cached_db_version",
    "findings_of",
    "parse_db_metadata",
    "parse_report",
]
