"""Where a platform's identity secret comes from, and each service's verification key.

The gateway signs the identity it forwards to a service with a key derived from one
secret (`forwarded_identity.derive_identity_key`); a service verifies with its own
key. No mode trusts a plain header, so every service needs a key before it starts:

- `MLPLANE_<SERVICE>_IDENTITY_KEY` (hex, 32+ bytes): the service's own key, the
  production choice (a service holds nothing that signs for another);
- else a key derived from `MLPLANE_IDENTITY_SECRET`, the secret the gateway signs with;
- else, only when `MLPLANE_ENV` is `dev`: a secret generated on the first start and
  kept in `<data dir>/identity-secret` (mode 0600), so `make run` works with nothing
  set and its services and gateway agree across restarts;
- else the service refuses to start (`IdentityNotConfigured`).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from mlplane_runtime.caller import identity_key, shared_identity_secret
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.settings import RuntimeSettings

IDENTITY_SECRET_FILE = "identity-secret"  # noqa: S105 (a file name)
_SECRET_BYTES = 32

_log = logging.getLogger("mlplane.platform")


class IdentityNotConfigured(InvalidInput):
    """Outside dev, a service has neither its own identity key nor the shared secret."""

    title = "Identity key not configured"


def platform_identity_secret(settings: RuntimeSettings) -> bytes | None:
    """The secret forwarded identities are derived from in this process, if any.

    `MLPLANE_IDENTITY_SECRET` when set; else, in dev, the data directory's secret
    (created on the first start, readable by its owner only); else None.
    Raises InvalidInput for a configured secret that is too short, or a secret file
    that cannot be used.
    """
    configured = shared_identity_secret()
    if configured is not None:
        return configured
    if settings.env != "dev":
        return None
    return _dev_secret(settings.data_dir / IDENTITY_SECRET_FILE)


def service_identity_key(service: str, shared_secret: bytes | None, env: str) -> bytes:
    """The key `service` verifies forwarded identities with.

    Its own `MLPLANE_<SERVICE>_IDENTITY_KEY`, else derived from `shared_secret`.
    Raises IdentityNotConfigured when there is neither, naming what to set.
    """
    key = identity_key(service, shared_secret)
    if key is None:
        variable = f"MLPLANE_{service.upper().replace('-', '_')}_IDENTITY_KEY"
        raise IdentityNotConfigured(
            f"service {service} has no key to verify the gateway's identity tokens with "
            f"(MLPLANE_ENV={env}): set {variable} or MLPLANE_IDENTITY_SECRET"
        )
    return key


def _dev_secret(path: Path) -> bytes:
    try:
        raw = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _create_secret(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the identity secret file {path} cannot be read: {exc}") from None
    if len(raw) < _SECRET_BYTES:
        raise InvalidInput(
            f"the identity secret file {path} is shorter than {_SECRET_BYTES} characters; "
            "delete it to have a new one made"
        )
    return raw.encode("ascii")


def _create_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(_SECRET_BYTES)
    # O_EXCL: two processes starting at once never overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _dev_secret(path)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(value + "\n")
    _log.info(
        "created the platform's identity secret in %s (services verify the gateway's "
        "identity tokens with keys derived from it)",
        path,
    )
    return value.encode("ascii")
