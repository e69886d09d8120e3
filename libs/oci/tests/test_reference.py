"""Image references and digests: parsing, printing, refusing what is not well formed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlplane_oci import ImageReference, InvalidReference
from mlplane_oci.digest import validate_digest

DIGEST = "sha256:" + "a" * 64

component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
repositories = st.lists(component, min_size=1, max_size=4).map("/".join)
hosts = st.one_of(
    st.from_regex(r"[a-z0-9]{1,10}\.[a-z]{2,5}", fullmatch=True),
    st.builds(
        lambda h, p: f"{h}:{p}",
        st.sampled_from(["127.0.0.1", "localhost", "harbor.io"]),
        st.integers(1, 65535),
    ),
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
digests = st.from_regex(r"[a-f0-9]{64}", fullmatch=True).map(lambda h: f"sha256:{h}")


class TestParse:
    def test_host_port_repository_tag_and_digest(self) -> None:
        ref = ImageReference.parse(f"127.0.0.1:5000/acme/fraud/model:1.2@{DIGEST}")
        assert ref == ImageReference("127.0.0.1:5000", "acme/fraud/model", "1.2", DIGEST)
        assert ref.reference == DIGEST

    def test_port_without_tag_is_not_a_tag(self) -> None:
        ref = ImageReference.parse("localhost:5000/model")
        assert (ref.registry, ref.repository, ref.tag) == ("localhost:5000", "model", None)
        assert ref.reference == "latest"

    def test_docker_hub_names_are_normalised(self) -> None:
        assert str(ImageReference.parse("python:3.11-slim")) == "docker.io/library/python:3.11-slim"
        assert ImageReference.parse("bitnami/redis").registry == "docker.io"
        assert ImageReference.parse("bitnami/redis").repository == "bitnami/redis"

    @pytest.mark.parametrize(
        "text",
        [
            "harbor.io/Acme/model:1",  # upper case repository
            "harbor.io/acme/model:-bad",  # tag starting with '-'
            "harbor.io/acme/model@sha256:abc",  # short digest
            "harbor.io/acme/model@md5:" + "a" * 32,  # unknown algorithm
            "harbor.io/acme//model",  # empty component
            "harbor.io/",  # no repository
        ],
    )
    def test_malformed_references_are_refused(self, text: str) -> None:
        with pytest.raises(InvalidReference):
            ImageReference.parse(text)

    @given(hosts, repositories, st.none() | tags, st.none() | digests)
    def test_printing_then_parsing_gives_the_same_reference(
        self, host: str, repository: str, tag: str | None, digest: str | None
    ) -> None:
        ref = ImageReference(host, repository, tag, digest)
        assert ImageReference.parse(str(ref)) == ref

    def test_with_digest_keeps_the_tag(self) -> None:
        ref = ImageReference.parse("harbor.io/acme/model:1").with_digest(DIGEST)
        assert str(ref) == f"harbor.io/acme/model:1@{DIGEST}"


class TestValidateDigest:
    def test_sha256_and_sha512_accepted(self) -> None:
        assert validate_digest(DIGEST) == DIGEST
        assert validate_digest("sha512:" + "0" * 128)

    @pytest.mark.parametrize(
        "digest", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256" + "a" * 64, ""]
    )
    def test_malformed_digests_refused(self, digest: str) -> None:
        with pytest.raises(InvalidReference):
            validate_digest(digest)
