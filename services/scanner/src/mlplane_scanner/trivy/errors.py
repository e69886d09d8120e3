"""What can go wrong when Trivy runs; each error names what was being scanned.

The scanner service turns these into a scan with `verdict: error` and the cause,
so `detail` is written for people: what was scanned, what Trivy said.
"""

from __future__ import annotations

from mlplane_runtime.errors import PROBLEM_BASE_URI, MlplaneError


class TrivyError(MlplaneError):
    """Base of the Trivy adapter's errors: the scanner itself could not give an answer."""

    status = 502
    problem_type = f"{PROBLEM_BASE_URI}/scanner-failed"
    title = "Scanner failed"
    retryable = True

    def __init__(self, detail: str, *, target: str) -> None:
        super().__init__(detail, target=target)
        self.target = target


class TrivyFailed(TrivyError):
    """Trivy exited non-zero: the image could not be pulled or read, or Trivy broke.

    `cause` is Trivy's own fatal message (one line), `stderr_tail` the end of its log.
    """

    def __init__(self, *, target: str, exit_code: int, cause: str, stderr_tail: str) -> None:
        super().__init__(f"trivy failed on {target} (exit {exit_code}): {cause}", target=target)
        self.exit_code = exit_code
        self.cause = cause
        self.stderr_tail = stderr_tail


class TrivyTimedOut(TrivyError):
    """Trivy ran past its time limit; its whole process group was killed."""

    def __init__(self, *, target: str, timeout_s: float) -> None:
        super().__init__(
            f"trivy on {target} ran past {timeout_s:g} s and was killed", target=target
        )
        self.timeout_s = timeout_s


class TrivyReportInvalid(TrivyError):
    """Trivy's output is not a report this adapter understands (not JSON, other schema)."""

    retryable = False
