"""Pure logic of the client: auth challenges, scopes, Retry-After, error bodies, backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_oci import RegistryCallFailed, RetryPolicy
from mlplane_oci.auth import merge_scopes
from mlplane_oci.challenge import parse_challenges
from mlplane_oci.errors import parse_error_body
from mlplane_oci.retry import parse_retry_after
from mlplane_oci.session import with_query


class TestParseChallenges:
    def test_bearer_with_realm_service_and_a_scope_holding_commas(self) -> None:
        [challenge] = parse_challenges(
            [
                'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                'scope="repository:samalba/my-app:pull,push"'
            ]
        )
        assert challenge.scheme == "bearer"
        assert challenge.realm == "https://auth.docker.io/token"
        assert challenge.service == "registry.docker.io"
        assert challenge.scopes == ("repository:samalba/my-app:pull,push",)

    def test_several_scopes_in_one_parameter(self) -> None:
        [challenge] = parse_challenges(
            ['Bearer realm="r",scope="repository:a:pull,push repository:b:pull"']
        )
        assert challenge.scopes == ("repository:a:pull,push", "repository:b:pull")

    def test_basic_and_bearer_in_one_header_and_across_headers(self) -> None:
        challenges = parse_challenges(
            ['Basic realm="Registry Realm", Bearer realm="https://h/t", service=h', "Negotiate"]
        )
        assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate"]
        assert challenges[0].realm == "Registry Realm"
        assert challenges[1].params == {"realm": "https://h/t", "service": "h"}

    def test_escaped_quotes_and_case_insensitive_names(self) -> None:
        [challenge] = parse_challenges(['BEARER Realm="a\\"b", Service = "s"'])
        assert challenge.realm == 'a"b'
        assert challenge.service == "s"

    def test_no_header_means_no_challenge(self) -> None:
        assert parse_challenges([]) == []
        assert parse_challenges([""]) == []


class TestMergeScopes:
    def test_actions_of_one_resource_are_united(self) -> None:
        merged = merge_scopes(["repository:a:pull", "repository:a:push,pull", "repository:b:pull"])
        assert merged == ("repository:a:pull,push", "repository:b:pull")

    def test_order_does_not_matter(self) -> None:
        assert merge_scopes(["repository:b:pull", "repository:a:pull"]) == merge_scopes(
            ["repository:a:pull", "repository:b:pull"]
        )


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("3") == 3.0

    def test_http_date(self) -> None:
        now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
        assert parse_retry_after("Thu, 01 Jan 2026 12:00:05 GMT", now=now) == 5.0

    @pytest.mark.parametrize("value", [None, "", "soon"])
    def test_missing_or_garbage_is_none(self, value: str | None) -> None:
        assert parse_retry_after(value) is None

    def test_policy_caps_what_the_registry_asks(self) -> None:
        policy = RetryPolicy(attempts=2, max_retry_after_s=5)
        assert policy.delay_s(1, 3600) == 5
        assert policy.delay_s(1, 2) == 2


class TestBackoff:
    def test_grows_exponentially_within_jitter_and_is_capped(self) -> None:
        policy = RetryPolicy(attempts=10, base_delay_s=1.0, max_delay_s=4.0)
        for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
            delays = [policy.backoff_s(failures) for _ in range(50)]
            assert all(ceiling / 2 <= d <= ceiling for d in delays)
            assert len(set(delays)) > 1  # jittered

    def test_at_least_one_attempt(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            RetryPolicy(attempts=0)


class TestErrorMessages:
    def test_registry_errors_body_is_in_the_message_and_the_query_is_not(self) -> None:
        body = (
            b'{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry",'
            b'"detail":"sha256:abc"}]}'
        )
        error = RegistryCallFailed.from_response(
            "PUT", "http://u:secret@127.0.0.1:5000/v2/acme/fraud/manifests/1?_state=x", 400, body
        )
        assert str(error) == (
            "PUT 127.0.0.1:5000/v2/acme/fraud/manifests/1: 400 MANIFEST_BLOB_UNKNOWN: "
            "blob unknown to registry (sha256:abc)"
        )
        assert error.codes == ("MANIFEST_BLOB_UNKNOWN",)
        assert "secret" not in str(error)

    def test_structured_detail_and_non_json_bodies(self) -> None:
        [detail] = parse_error_body(
            b'{"errors":[{"code":"DENIED","message":"no","detail":{"a":1}}]}'
        )
        assert str(detail) == 'DENIED: no ({"a":1})'
        assert parse_error_body(b"<html>bad gateway</html>") == ()


def test_with_query_keeps_the_registrys_upload_state() -> None:
    url = with_query("http://r/v2/a/blobs/uploads/u?_state=abc%3D", "digest", "sha256:00")
    assert url == "http://r/v2/a/blobs/uploads/u?_state=abc%3D&digest=sha256%3A00"
