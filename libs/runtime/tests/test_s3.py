"""Shared S3 clients: one configuration for every service, against a real S3 server; the
platform's fixed buckets (services share one, each under its own prefix, the bucket made
once at start; a bucket that cannot be made names its setting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import S3Connection, ensure_bucket, error_code, s3_client
from mlplane_runtime.s3_bucket import BucketSpace, OpenBucket
from mlplane_testing.s3_server import (  # noqa: F401 (a fixture: the real S3 server)
    S3Endpoint,
    delete_bucket,
    s3_endpoint,
    unique_bucket,
)


def connection_to(endpoint: S3Endpoint) -> S3Connection:
    return S3Connection(endpoint.url, endpoint.region, endpoint.access_key, endpoint.secret_key)


@pytest.fixture
async def bucket(s3_endpoint: S3Endpoint) -> AsyncIterator[str]:  # noqa: F811
    """A bucket name no other test uses; the bucket is removed after the test if made."""
    name = unique_bucket("runtime")
    try:
        yield name
    finally:
        await delete_bucket(s3_endpoint, name)


class TestS3Connection:
    def test_every_client_gets_path_style_sigv4_retries_timeouts_and_lazy_checksums(
        self,
    ) -> None:
        config = S3Connection("http://s3.test", max_retries=5).client_config()

        assert config.signature_version == "s3v4"
        assert config.s3 == {"addressing_style": "path"}
        assert config.retries == {"max_attempts": 5, "mode": "standard"}
        assert (config.connect_timeout, config.read_timeout) == (5.0, 60.0)
        assert config.request_checksum_calculation == "when_required"
        assert config.response_checksum_validation == "when_required"

    def test_the_secret_key_stays_out_of_repr(self) -> None:
        connection = S3Connection("http://s3.test", "eu-west-1", "AKIDEXAMPLE", "s3cr3t-value")

        assert "s3cr3t-value" not in repr(connection)
        assert "AKIDEXAMPLE" in repr(connection)


class TestS3Client:
    async def test_the_client_uses_the_connections_endpoint_region_and_settings(self) -> None:
        connection = S3Connection("http://127.0.0.1:9", "eu-west-1", "a", "b", max_retries=2)

        async with s3_client(connection) as client:
            assert client.meta.endpoint_url == "http://127.0.0.1:9"
            assert client.meta.region_name == "eu-west-1"
            assert client.meta.config.s3 == {"addressing_style": "path"}
            # botocore counts the first try in `total_max_attempts`: two retries, three tries.
            assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}

    async def test_no_endpoint_means_aws_own_endpoint_for_the_region(self) -> None:
        connection = S3Connection(None, "eu-west-1", "a", "b")

        async with s3_client(connection) as client:
            assert client.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"

    async def test_no_keys_leave_credentials_to_the_default_chain(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # botocore's chain reads the environment first; without credentials from
        # somewhere, the call would fail with NoCredentialsError before being sent.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_key)

        async with s3_client(S3Connection(s3_endpoint.url, s3_endpoint.region)) as client:
            listed = await client.list_buckets()

        assert listed["ResponseMetadata"]["HTTPStatusCode"] == 200

    async def test_writes_and_reads_objects_on_a_real_server(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
        bucket: str,
    ) -> None:
        async with s3_client(connection_to(s3_endpoint)) as client:
            await client.create_bucket(Bucket=bucket)
            await client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
            response = await client.get_object(Bucket=bucket, Key="a/b.txt")
            async with response["Body"] as body:
                assert await body.read() == b"hello"

    async def test_an_endpoint_that_does_not_answer_fails_on_the_first_call(self) -> None:
        # Port 9 (discard) is closed here: connecting is refused at once.
        connection = S3Connection("http://127.0.0.1:9", access_key="a", secret_key="b")

        async with s3_client(replace(connection, max_retries=0)) as client:
            with pytest.raises(BotoCoreError):
                await client.head_bucket(Bucket="anything")


class TestEnsureBucket:
    async def test_creates_a_missing_bucket(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
        bucket: str,
    ) -> None:
        async with s3_client(connection_to(s3_endpoint)) as client:
            await ensure_bucket(client, bucket)

            await client.head_bucket(Bucket=bucket)

    async def test_an_existing_bucket_is_left_as_it_is(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
        bucket: str,
    ) -> None:
        async with s3_client(connection_to(s3_endpoint)) as client:
            await client.create_bucket(Bucket=bucket)
            await client.put_object(Bucket=bucket, Key="kept", Body=b"1")

            await ensure_bucket(client, bucket)

            listed = await client.list_objects_v2(Bucket=bucket)
            assert [item["Key"] for item in listed["Contents"]] == ["kept"]


class TestErrorCode:
    async def test_a_missing_object_answers_a_missing_code(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
        bucket: str,
    ) -> None:
        async with s3_client(connection_to(s3_endpoint)) as client:
            await client.create_bucket(Bucket=bucket)
            with pytest.raises(ClientError) as caught:
                await client.get_object(Bucket=bucket, Key="absent")

        assert error_code(caught.value) == "NoSuchKey"

    def test_an_error_without_a_code_has_an_empty_one(self) -> None:
        assert error_code(ClientError({}, "GetObject")) == ""


class TestBucketSpace:
    def test_keys_and_uris_lie_under_the_prefix(self) -> None:
        space = BucketSpace("mlplane", "scanner/", "MLPLANE_SCANNER_S3_BUCKET")

        assert space.key("teams/a/x.json") == "scanner/teams/a/x.json"
        assert space.uri("teams/a/x.json") == "s3://mlplane/scanner/teams/a/x.json"
        assert space.key_of("s3://mlplane/scanner/teams/a/x.json") == "teams/a/x.json"

    @pytest.mark.parametrize(
        "uri",
        [
            "s3://mlplane/drift/teams/a/x.json",  # another service's prefix, same bucket
            "s3://mlplane/scanner-old/teams/a/x.json",
            "s3://other/scanner/teams/a/x.json",
            "s3://mlplane/scanner/",
            "file:///mlplane/scanner/teams/a/x.json",
        ],
    )
    def test_a_uri_outside_the_space_has_no_key_in_it(self, uri: str) -> None:
        assert BucketSpace("mlplane", "scanner/").key_of(uri) is None

    @pytest.mark.parametrize("prefix", ["scanner", "/scanner/", "../", "Scanner/", "a//"])
    def test_a_prefix_is_segments_each_ending_in_a_slash(self, prefix: str) -> None:
        with pytest.raises(ValueError, match="prefix"):
            BucketSpace("mlplane", prefix)


class TestOpenBucket:
    async def test_services_share_one_bucket_each_under_its_own_prefix(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
        bucket: str,
    ) -> None:
        connection = connection_to(s3_endpoint)
        scanner = OpenBucket(connection, BucketSpace(bucket, "scanner/"), not_started="-")
        drift = OpenBucket(connection, BucketSpace(bucket, "drift/"), not_started="-")
        await scanner.start()  # makes the bucket
        await drift.start()  # finds it there
        try:
            for store in (scanner, drift):
                await store.client().put_object(
                    Bucket=bucket, Key=store.space.key("teams/a/x.json"), Body=b"{}"
                )
            listed = await scanner.client().list_objects_v2(Bucket=bucket)
        finally:
            await scanner.close()
            await drift.close()

        assert sorted(item["Key"] for item in listed["Contents"]) == [
            "drift/teams/a/x.json",
            "scanner/teams/a/x.json",
        ]

    async def test_a_bucket_that_cannot_be_made_names_its_setting(
        self,
        s3_endpoint: S3Endpoint,  # noqa: F811
    ) -> None:
        # Not a valid bucket name: the server refuses to make it, as it would refuse a
        # bucket these credentials may not create.
        space = BucketSpace("Not_A_Bucket", "scanner/", "MLPLANE_SCANNER_S3_BUCKET")
        store = OpenBucket(connection_to(s3_endpoint), space, not_started="-")

        with pytest.raises(Unavailable) as refused:
            await store.start()

        assert "MLPLANE_SCANNER_S3_BUCKET" in refused.value.detail
        assert "'Not_A_Bucket'" in refused.value.detail
        assert s3_endpoint.secret_key not in refused.value.detail
        with pytest.raises(Unavailable):
            store.client()

    async def test_storage_that_does_not_answer_names_the_setting_too(self) -> None:
        # Port 9 (discard) is closed here: connecting is refused at once.
        connection = S3Connection("http://127.0.0.1:9", access_key="a", secret_key="b")
        space = BucketSpace("mlplane", "drift/", "MLPLANE_DRIFT_S3_BUCKET")
        store = OpenBucket(replace(connection, max_retries=0), space, not_started="-")

        with pytest.raises(Unavailable) as refused:
            await store.start()

        assert "MLPLANE_DRIFT_S3_BUCKET" in refused.value.detail
        assert "http://127.0.0.1:9" in refused.value.detail
