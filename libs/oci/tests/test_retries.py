"""Registries that are down or busy: retried within the policy, then a clear error."""

from __future__ import annotations

import time

import pytest
from mlplane_oci import OciClient, RegistryUnavailable, RetryPolicy, media_types
from mlplane_testing.http_server import free_port
from mlplane_testing.oci_registry import DistributionRegistry
from starlette.requests import Request
from starlette.responses import Response

from .servers import serve

DIGEST = "sha256:" + "b" * 64


async def test_a_registry_that_does_not_answer_is_unavailable_after_the_configured_attempts(
    repository: str,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    policy = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.02)
    async with OciClient(url, retry=policy) as client:
        with pytest.raises(RegistryUnavailable) as caught:
            await client.blob_size(repository, DIGEST)
        assert client.stats.count("HEAD", "blob") == 4
        assert client.stats.retries == 3
    error = caught.value
    assert error.retryable
    assert str(error).startswith(f"HEAD {url[7:]}/v2/{repository}/blobs/{DIGEST}: no answer (")
    assert "after 4 attempts" in str(error)


async def test_a_registry_stopped_mid_test_is_unavailable(repository: str) -> None:
    registry = DistributionRegistry.start()
    policy = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
    try:
        async with OciClient(registry.url, retry=policy) as client:
            digest = await client.push_blob(repository, b"before the stop")
            registry.stop()
            with pytest.raises(RegistryUnavailable, match="no answer"):
                await client.get_blob(repository, digest)
            assert client.stats.count("GET", "blob") == 2
    finally:
        registry.stop()


async def test_429_then_200_waits_as_long_as_retry_after_says(repository: str) -> None:
    answers: list[float] = []
    manifest = b'{"schemaVersion":2,"mediaType":"%s"}' % media_types.OCI_INDEX.encode()

    async def app(scope: object, receive: object, send: object) -> None:
        request = Request(scope, receive)  # type: ignore[arg-type]
        answers.append(time.monotonic())
        if len(answers) == 1:
            response = Response(b"slow down", 429, headers={"Retry-After": "1"})
        else:
            response = Response(manifest, 200, headers={"Content-Type": media_types.OCI_INDEX})
        assert request.url.path == f"/v2/{repository}/manifests/1"
        await response(scope, receive, send)  # type: ignore[arg-type]

    # A backoff of milliseconds: only Retry-After can make the client wait a second.
    policy = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02)
    with serve(app) as url:
        async with OciClient(url, retry=policy) as client:
            got = await client.get_manifest(repository, "1")
    assert got.content == manifest
    assert got.media_type == media_types.OCI_INDEX
    assert len(answers) == 2
    assert answers[1] - answers[0] >= 0.95


async def test_5xx_is_retried_and_then_reported_with_the_registrys_reason(
    repository: str,
) -> None:
    calls = []

    async def app(scope: object, receive: object, send: object) -> None:
        calls.append(1)
        body = b'{"errors":[{"code":"UNKNOWN","message":"storage backend down"}]}'
        await Response(body, 503)(scope, receive, send)  # type: ignore[arg-type]

    policy = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02)
    with serve(app) as url:
        async with OciClient(url, retry=policy) as client:
            with pytest.raises(RegistryUnavailable) as caught:
                await client.get_manifest(repository, "1")
            with pytest.raises(RegistryUnavailable) as caught_head:
                await client.manifest_digest(repository, "1")
    assert len(calls) == 6
    assert "503 UNKNOWN: storage backend down (after 3 attempts)" in str(caught.value)
    # A HEAD has no body to give a reason: the status's phrase stands in.
    assert "503 Service Unavailable (after 3 attempts)" in str(caught_head.value)
