"""Where raw Trivy reports and SBOMs are kept: S3 in production, the local disk embedded."""

from mlplane_scanner.reports.local_disk import LocalDiskReportStore
from mlplane_scanner.reports.s3 import S3ReportStore
from mlplane_scanner.reports.store import CYCLONEDX, ReportNotFound, ReportStore, report_key

__all__ = [
    "CYCLONEDX",
    "LocalDiskReportStore",
    "ReportNotFound",
    "ReportStore",
    "S3ReportStore",
    "report_key",
]
