"""What can go wrong talking to an OCI registry, sorted by what a caller does about it.

Every message names the call (`PUT 127.0.0.1:5000/v2/acme/fraud/manifests/1`) and
the registry's reason, taken from its JSON `errors` body when it sent one. The
upload-state query string (`?_state=...`) is left out of messages: it is long and
says nothing to a person. Credentials and tokens never appear in a message.

- `RegistryUnavailable` (retryable): nothing answered, a timeout, 429 or 5xx after
  the retries the policy allowed.
- `UploadInterrupted` (retryable): a streamed upload failed in a way that cannot be
  resumed; only the caller, who owns the stream, can start it again.
- `RegistryAuthFailed`: credentials refused or missing; retrying will not help.
- `BlobNotFound`, `ManifestNotFound`: 404 on a read that needs the content.
- `DigestMismatch`: content does not hash to the digest it was asked or sent for.
- `RegistryCallFailed`: any other refusal (400 MANIFEST_BLOB_UNKNOWN, 403, ...).
- `InvalidReference`: an image reference or digest that cannot be parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from mlplane_runtime.errors import PROBLEM_BASE_URI, InvalidInput, MlplaneError


@dataclass(frozen=True)
class RegistryErrorDetail:
    """One entry of a registry's `{"errors": [...]}` body (distribution spec)."""

    code: str
    message: str
    detail: str | None = None

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        return f"{text} ({self.detail})" if self.detail else text


def parse_error_body(body: bytes) -> tuple[RegistryErrorDetail, ...]:
    """The `errors` a registry put in its body; empty when the body is not that shape."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(document, dict) or not isinstance(document.get("errors"), list):
        return ()
    details = []
    for entry in document["errors"]:
        if not isinstance(entry, dict):
            continue
        detail = entry.get("detail")
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, separators=(",", ":"), sort_keys=True)
        details.append(
            RegistryErrorDetail(
                code=str(entry.get("code", "UNKNOWN")),
                message=str(entry.get("message", "")),
                detail=detail or None,
            )
        )
    return tuple(details)


def describe_call(method: str, url: str) -> str:
    """`METHOD host:port/path`, without scheme, query or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{method} {host}{parts.path}"


def _phrase(http_status: int) -> str:
    try:
        return HTTPStatus(http_status).phrase
    except ValueError:
        return ""


class OciError(MlplaneError):
    """Base of the OCI client's errors: a registry call did not do what was asked."""

    status = 502
    problem_type = f"{PROBLEM_BASE_URI}/oci-registry"
    title = "Container registry call failed"
    retryable = False

    def __init__(
        self,
        detail: str,
        *,
        call: str | None = None,
        http_status: int | None = None,
        errors: tuple[RegistryErrorDetail, ...] = (),
        **extensions: Any,
    ) -> None:
        super().__init__(detail, **extensions)
        self.call = call
        self.http_status = http_status
        self.errors = errors

    @property
    def codes(self) -> tuple[str, ...]:
        """The registry's error codes (`BLOB_UNKNOWN`, `DENIED`, ...), if it sent any."""
        return tuple(error.code for error in self.errors)

    @classmethod
    def from_response(
        cls, method: str, url: str, http_status: int, body: bytes, reason: str | None = None
    ) -> OciError:
        """`<call>: <status> <registry errors or reason>`, as an instance of `cls`."""
        call = describe_call(method, url)
        errors = parse_error_body(body)
        why = (
            "; ".join(str(error) for error in errors)
            if errors
            else (reason or _phrase(http_status))
        )
        detail = f"{call}: {http_status} {why}".rstrip()
        return cls(detail, call=call, http_status=http_status, errors=errors)


class RegistryUnavailable(OciError):
    status = 503
    problem_type = f"{PROBLEM_BASE_URI}/oci-registry-unavailable"
    title = "Container registry unavailable"
    retryable = True


class UploadInterrupted(RegistryUnavailable):
    """A chunked upload broke and the registry cannot tell where to resume."""

    title = "Container registry upload interrupted"


class RegistryAuthFailed(OciError):
    problem_type = f"{PROBLEM_BASE_URI}/oci-registry-auth"
    title = "Container registry refused the credentials"


class BlobNotFound(OciError):
    status = 404
    problem_type = f"{PROBLEM_BASE_URI}/oci-blob-not-found"
    title = "Blob not found in the container registry"


class ManifestNotFound(OciError):
    status = 404
    problem_type = f"{PROBLEM_BASE_URI}/oci-manifest-not-found"
    title = "Manifest not found in the container registry"


class DigestMismatch(OciError):
    problem_type = f"{PROBLEM_BASE_URI}/oci-digest-mismatch"
    title = "Content does not match its digest"


class RegistryCallFailed(OciError):
    pass


class InvalidReference(InvalidInput):
    """An image reference or digest that is not well formed."""

    problem_type = f"{PROBLEM_BASE_URI}/invalid-image-reference"
    title = "Invalid image reference"
