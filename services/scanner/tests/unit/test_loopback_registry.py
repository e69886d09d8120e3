"""A registry on this machine is reached over plain http without a setting, as the builder does."""

from __future__ import annotations

import pytest
from mlplane_scanner.trivy.sources import RegistryImage, on_loopback


@pytest.mark.parametrize(
    "reference",
    [
        "localhost:5000/team/model@sha256:" + "a" * 64,
        "127.0.0.1:5000/m:1",
        "[::1]:5000/m:1",
        "localhost/m:1",
    ],
)
def test_loopback_registries(reference: str) -> None:
    assert on_loopback(RegistryImage(reference))


@pytest.mark.parametrize(
    "reference",
    [
        "registry.example.com/team/model:1",
        "ghcr.io/org/image:1",
        "python:3.11",
        "library/python:3.11",
        "localhost.example.com:5000/m:1",
        "10.0.0.1:5000/m:1",
    ],
)
def test_other_registries(reference: str) -> None:
    assert not on_loopback(RegistryImage(reference))
