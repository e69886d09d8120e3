"""Pure rules of the facade: the scope a call needs, paths, Location rewriting, identities."""

from __future__ import annotations

import time

import jwt
import pytest
from mlplane_gateway.facade.breaker import CircuitBreaker
from mlplane_gateway.facade.headers import public_location
from mlplane_gateway.facade.identity import IdentitySigner
from mlplane_gateway.facade.proxy import service_path
from mlplane_gateway.facade.retry import RetryPolicy
from mlplane_gateway.facade.routes import required_scope
from mlplane_gateway.facade.upstreams import Upstream, Upstreams
from mlplane_runtime.forwarded_identity import (
    InvalidForwardedIdentity,
    verify_forwarded_identity,
)
from yarl import URL


class TestRequiredScope:
    @pytest.mark.parametrize(
        ("service", "method", "path", "scope"),
        [
            ("registry", "GET", "models", "models:read"),
            ("registry", "HEAD", "models/x", "models:read"),
            ("registry", "POST", "models", "models:write"),
            ("registry", "DELETE", "models/x", "models:write"),
            ("scanner", "PUT", "policies/x", "models:write"),
            ("deployer", "POST", "deployments", "deploy:write"),
            ("deployer", "POST", "deployments/7/approvals", "deploy:approve"),
            ("deployer", "GET", "deployments/7/approvals", "models:read"),
            ("mlflow", "POST", "registered-models/get-latest-versions", "models:read"),
            ("mlflow", "POST", "registered-models/create", "models:write"),
            ("mlflow", "GET", "registered-models/get", "models:read"),
            ("drift", "POST", "samples", "events:publish"),
            ("drift", "POST", "samples/parquet", "events:publish"),
            ("drift", "PUT", "models/fraud/versions/1/reference", "models:write"),
            ("drift", "GET", "models/samples/reports", "models:read"),
        ],
    )
    def test_reads_and_writes(self, service: str, method: str, path: str, scope: str) -> None:
        assert required_scope(service, method, path) == scope


class TestServicePath:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("models/fraud", "models/fraud"),
            ("models/a b", "models/a%20b"),
            ("models/x?y", "models/x%3Fy"),
            ("", ""),
        ],
    )
    def test_paths_are_encoded_again(self, path: str, expected: str) -> None:
        assert service_path(path) == expected

    @pytest.mark.parametrize("path", ["..", "../scanner", "models/../../x", "./models"])
    def test_dot_segments_are_refused(self, path: str) -> None:
        assert service_path(path) is None


def upstream(base: str) -> Upstream:
    return Upstream(
        name="registry",
        base_url=URL(base),
        timeout_s=1,
        retries=RetryPolicy(),
        breaker=CircuitBreaker(),
    )


class TestPublicLocation:
    @pytest.mark.parametrize(
        ("location", "expected"),
        [
            ("/registry/models/x", "/v1/registry/models/x"),
            ("http://reg:8080/registry/models/x", "/v1/registry/models/x"),
            ("http://elsewhere/registry/models/x", "http://elsewhere/registry/models/x"),
            ("models/x/versions/1", "models/x/versions/1"),
            ("/registryother/x", "/registryother/x"),
        ],
    )
    def test_locations_into_the_service_are_rewritten(self, location: str, expected: str) -> None:
        assert public_location(location, upstream("http://reg:8080/registry"), "/v1/registry") == (
            expected
        )


class TestUpstreams:
    def test_urls_keep_the_mount_and_the_query(self) -> None:
        url = upstream("http://reg:8080/registry/").url_for("models/a%20b", b"x=1&y=%2F")
        assert str(url) == "http://reg:8080/registry/models/a%20b?x=1&y=%2F"

    def test_bytes_a_query_may_not_carry_raw_are_escaped(self) -> None:
        url = upstream("http://reg/registry").url_for("m", "q=\u00e9 x".encode())
        assert str(url) == "http://reg/registry/m?q=%C3%A9%20x"

    async def test_only_http_urls_are_accepted(self) -> None:
        with pytest.raises(ValueError, match="not an http"):
            Upstreams.build({"registry": "ftp://reg/registry"})
        async with Upstreams.build({"registry": "http://reg/registry"}) as built:
            assert "registry" in built
            assert built.get("scanner") is None


class TestIdentitySigner:
    def test_tokens_are_standard_jws_that_pyjwt_accepts(self) -> None:
        signer = IdentitySigner(b"k" * 32, lifetime_s=20, clock=time.time)
        token = signer.token_for(
            audience="scanner", principal="user:ann", team=None, scopes={"b", "a"}
        )
        assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
        claims = jwt.decode(
            token,
            signer.key_for("scanner"),
            algorithms=["HS256"],
            audience="scanner",
            issuer="mlplane-gateway",
        )
        assert (claims["sub"], claims["scopes"], claims["exp"] - claims["iat"]) == (
            "user:ann",
            ["a", "b"],
            20,
        )
        assert "team" not in claims
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, b"x" * 32, algorithms=["HS256"], audience="scanner")

    def test_tokens_verify_with_the_runtimes_verifier(self) -> None:
        signer = IdentitySigner(b"k" * 32, lifetime_s=20, clock=lambda: 1_800_000_000)
        token = signer.token_for(
            audience="scanner", principal="user:ann", team="risk", scopes={"models:read"}
        )
        identity = verify_forwarded_identity(
            token, audience="scanner", key=signer.key_for("scanner"), now=1_800_000_001
        )
        assert (identity.principal, identity.team, identity.expires_at) == (
            "user:ann",
            "risk",
            1_800_000_020,
        )
        with pytest.raises(InvalidForwardedIdentity):
            verify_forwarded_identity(
                token, audience="registry", key=signer.key_for("registry"), now=1_800_000_001
            )

    def test_each_token_has_its_own_jti(self) -> None:
        signer = IdentitySigner(b"k" * 32)
        tokens = {
            signer.token_for(audience="a", principal="p", team=None, scopes=()) for _ in range(3)
        }
        assert len(tokens) == 3

    def test_weak_secrets_and_long_lifetimes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="32 bytes"):
            IdentitySigner(b"short")
        with pytest.raises(ValueError, match="lifetime"):
            IdentitySigner(b"k" * 32, lifetime_s=61)
