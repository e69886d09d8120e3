"""Fixtures of the registry's integration tests."""

from __future__ import annotations

from mlplane_testing.s3_server import s3_endpoint  # noqa: F401 (a fixture: the real S3 server)
