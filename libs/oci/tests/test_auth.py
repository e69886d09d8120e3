"""Authentication: Bearer tokens from a token service (as Harbor and Docker Hub do),
against a real registry configured with `auth: token`; Basic against a stand-in."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlplane_oci import OciClient, RegistryAuthFailed, media_types
from mlplane_testing.oci_registry import (
    DistributionRegistry,
    TokenIssuer,
    unique_repository,
)
from starlette.requests import Request
from starlette.responses import Response

from .conftest import FAST_RETRY
from .servers import serve

USER, PASSWORD = "builder", "s3cret-Pa55"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenIssuer]:
    token_issuer = TokenIssuer(tmp_path_factory.mktemp("issuer"), username=USER, password=PASSWORD)
    try:
        yield token_issuer
    finally:
        token_issuer.close()


@pytest.fixture(scope="module")
def token_registry(issuer: TokenIssuer) -> Iterator[DistributionRegistry]:
    registry = DistributionRegistry.start(auth=issuer.auth_config())
    try:
        yield registry
    finally:
        registry.stop()


class TestBearer:
    async def test_push_and_pull_through_token_auth(
        self, token_registry: DistributionRegistry, issuer: TokenIssuer
    ) -> None:
        repository, other = unique_repository(), unique_repository()
        data = os.urandom(3 * 2**20)

        async def chunks() -> Iterator[bytes]:  # type: ignore[misc]
            yield data

        async with OciClient(
            token_registry.url, username=USER, password=PASSWORD, retry=FAST_RETRY
        ) as client:
            config = await client.push_blob(repository, b"{}")
            layer = await client.push_blob_stream(repository, chunks(), chunk_size=2**20)
            manifest = (
                b'{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s",'
                b'"size":2},"layers":[{"mediaType":"%s","digest":"%s","size":%d}]}'
                % (
                    media_types.OCI_MANIFEST.encode(),
                    media_types.OCI_CONFIG.encode(),
                    config.encode(),
                    media_types.OCI_LAYER_TAR.encode(),
                    layer.digest.encode(),
                    layer.size,
                )
            )
            digest = await client.put_manifest(repository, "1", manifest, media_types.OCI_MANIFEST)
            assert (await client.get_manifest(repository, "1")).digest == digest
            assert await client.get_blob(repository, config) == b"{}"
            assert await client.mount_blob(other, layer.digest, repository) is True
            tokens = client.stats.count("GET", "token")
            assert await client.blob_size(other, layer.digest) == layer.size
            assert await client.blob_size(other, layer.digest) == layer.size
            # One token per scope set, then reused: a second read fetches none.
            assert client.stats.count("GET", "token") == tokens + 1
        users = {user for user, _ in issuer.requests}
        assert users == {USER}
        mount_scopes = next(s for _, s in issuer.requests if any(other in x for x in s))
        assert set(mount_scopes) == {
            f"repository:{other}:pull,push",
            f"repository:{repository}:pull",
        }

    async def test_the_token_service_refusing_the_password_fails_without_leaking_it(
        self, token_registry: DistributionRegistry
    ) -> None:
        async with OciClient(
            token_registry.url, username=USER, password="wrong-Pa55", retry=FAST_RETRY
        ) as client:
            with pytest.raises(RegistryAuthFailed) as caught:
                await client.blob_size(unique_repository(), "sha256:" + "c" * 64)
        assert not caught.value.retryable
        assert "token endpoint refused the configured credentials" in str(caught.value)
        assert "wrong-Pa55" not in str(caught.value)
        assert base64.b64encode(f"{USER}:wrong-Pa55".encode()).decode() not in str(caught.value)

    async def test_anonymous_tokens_when_no_credentials_are_needed(self, tmp_path: Path) -> None:
        anonymous = TokenIssuer(tmp_path)
        registry = DistributionRegistry.start(auth=anonymous.auth_config())
        try:
            async with OciClient(registry.url, retry=FAST_RETRY) as client:
                repository = unique_repository()
                digest = await client.push_blob(repository, b"anonymous")
                assert await client.get_blob(repository, digest) == b"anonymous"
            assert {user for user, _ in anonymous.requests} == {None}
        finally:
            registry.stop()
            anonymous.close()


def basic_registry(blob: bytes, digest: str, seen: list[str | None]) -> object:
    """Answers one blob to Basic USER:PASSWORD, 401 with a Basic challenge otherwise."""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    async def app(scope: object, receive: object, send: object) -> None:
        request = Request(scope, receive)  # type: ignore[arg-type]
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != expected:
            response = Response(
                b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                401,
                headers={"WWW-Authenticate": 'Basic realm="mlplane-test"'},
            )
        elif request.url.path.endswith(f"/blobs/{digest}"):
            response = Response(blob, 200, headers={"Content-Type": "application/octet-stream"})
        else:
            response = Response(b"", 404)
        await response(scope, receive, send)  # type: ignore[arg-type]

    return app


class TestBasic:
    BLOB = b"basic blob"
    DIGEST = "sha256:" + __import__("hashlib").sha256(BLOB).hexdigest()

    async def test_basic_credentials_are_sent_after_the_challenge_then_upfront(self) -> None:
        seen: list[str | None] = []
        with serve(basic_registry(self.BLOB, self.DIGEST, seen)) as url:  # type: ignore[arg-type]
            async with OciClient(url, username=USER, password=PASSWORD) as client:
                assert await client.get_blob("acme/model", self.DIGEST) == self.BLOB
                assert await client.get_blob("acme/model", self.DIGEST) == self.BLOB
        assert seen[0] is None  # the first try is anonymous, the 401 says Basic
        assert len(seen) == 3  # no second challenge: the credentials go with the next call

    @pytest.mark.parametrize(
        ("username", "password", "reason"),
        [
            (USER, "wrong-Pa55", "asked for: refused"),
            (None, None, "none are configured"),
        ],
    )
    async def test_refused_or_missing_credentials_fail_without_leaking_them(
        self, username: str | None, password: str | None, reason: str
    ) -> None:
        with serve(basic_registry(self.BLOB, self.DIGEST, [])) as url:  # type: ignore[arg-type]
            async with OciClient(url, username=username, password=password) as client:
                with pytest.raises(RegistryAuthFailed, match=reason) as caught:
                    await client.get_blob("acme/model", self.DIGEST)
        assert "wrong-Pa55" not in str(caught.value)
