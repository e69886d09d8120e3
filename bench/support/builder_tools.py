"""The image-build sides of bench/builder.py as child commands: mlplane's build, buildah's
and skopeo's, each speaking the parent's ready/go protocol.

buildah and skopeo are Debian's (`apt-get install buildah skopeo`); buildah keeps its
images in vfs storage under the benchmark's directory, so nothing outside it changes.
The base image is pushed once by buildah (a scratch image with two small files), so
every side starts from the same base in the same registry. skopeo copies an OCI layout
of mlplane's image whose model layer is gzipped at another level: a registry keeps
one copy of a blob, and the same digest pushed twice would not be pushed at all.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

MODEL_PATH = "/models/bench/1/model.bin"
LAYOUT_LEVEL = 2
# Bash (5+) reports EPOCHREALTIME with microseconds; the parent subtracts the two.
_TIMED = """set -euo pipefail
echo ready
read -r go
started=$EPOCHREALTIME
{steps}
echo "{{\\"started\\": $started, \\"ended\\": $EPOCHREALTIME}}"
"""


class ImageTools:
    """Commands for one benchmark run in `workdir` against the registry at `url`."""

    def __init__(self, workdir: Path, url: str) -> None:
        for tool in ("buildah", "skopeo"):
            if shutil.which(tool) is None:
                raise SystemExit(f"{tool} is not installed: apt-get install buildah skopeo")
        self._workdir = workdir
        self._host = urlsplit(url).netloc
        self._url = url
        self._storage = [
            "--storage-driver",
            "vfs",
            "--root",
            str(workdir / "buildah-root"),
            "--runroot",
            str(workdir / "buildah-run"),
        ]
        self._sha256: dict[Path, str] = {}

    def push_base(self) -> str:
        """A small base image in the registry (untimed); its reference."""
        files = self._workdir / "base"
        (files / "usr/local/bin").mkdir(parents=True)
        (files / "etc").mkdir()
        (files / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
        (files / "usr/local/bin/serve").write_text("#!/bin/sh\necho serving\n")
        reference = f"{self._host}/mlplane-bench/base-{self._workdir.name[-8:].lower()}:1.0"
        container = self._buildah("from", "scratch")
        self._buildah("copy", container, str(files), "/")
        self._buildah("config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", container)
        self._buildah("commit", "-q", container, "bench-base")
        self._buildah("push", "--tls-verify=false", "bench-base", f"docker://{reference}")
        self._buildah("rm", container)
        return reference

    def mlplane_build(self, artifact: Path, base: str, repository: str) -> list[str]:
        root = artifact.parents[5]  # .../artifacts, above teams/<t>/models/<m>/<k>/<file>
        return [
            sys.executable,
            "-m",
            "bench.support.builder_build",
            str(root),
            artifact.as_uri(),
            str(artifact.stat().st_size),
            self._sha256_of(artifact),
            base,
            self._url,
            repository,
        ]

    def buildah_build(self, artifact: Path, base: str, repository: str) -> list[str]:
        buildah = " ".join(["buildah", *self._storage])
        image = f"bench-{repository.rsplit('-', 1)[-1]}"
        steps = "\n".join(
            [
                f"c=$({buildah} from --tls-verify=false -q docker://{base})",
                f"{buildah} copy -q --chmod 0644 $c {artifact} {MODEL_PATH} >/dev/null",
                f"{buildah} commit -q $c {image} >/dev/null",
                f"{buildah} push -q --tls-verify=false {image} "
                f"docker://{self._host}/{repository}:v1",
                f"{buildah} rm $c >/dev/null",
            ]
        )
        return ["bash", "-c", _TIMED.format(steps=steps)]

    def layout_for_skopeo(self, artifact: Path, base: str, name: str) -> list[str]:
        """The untimed step before skopeo's copy: the same image in an OCI layout, its
        model layer gzipped at another level (new digest, same content and size)."""
        layout = self._workdir / f"layout-{name}"
        return [*self.mlplane_build(artifact, base, name), str(layout), str(LAYOUT_LEVEL)]

    def skopeo_copy(self, name: str, tag: str, repository: str) -> list[str]:
        layout = self._workdir / f"layout-{name}"
        steps = (
            f"skopeo copy -q --dest-tls-verify=false oci:{layout}:{tag} "
            f"docker://{self._host}/{repository}:{tag}"
        )
        return ["bash", "-c", _TIMED.format(steps=steps)]

    def clean(self) -> None:
        """Drop buildah's storage (vfs keeps full copies of every layer)."""
        subprocess.run(
            ["buildah", *self._storage, "rmi", "--all", "--force"],
            check=False,
            capture_output=True,
        )

    def _buildah(self, *arguments: str) -> str:
        done = subprocess.run(
            ["buildah", *self._storage, *arguments], check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def _sha256_of(self, path: Path) -> str:
        if path not in self._sha256:
            digest = hashlib.sha256()
            with path.open("rb") as source:
                while chunk := source.read(2**20):
                    digest.update(chunk)
            self._sha256[path] = digest.hexdigest()
        return self._sha256[path]
