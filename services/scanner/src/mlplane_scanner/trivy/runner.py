"""The Trivy adapter: scans images, builds SBOMs, checks manifests, keeps the database fresh.

Every Trivy process goes through one semaphore (Trivy is CPU-bound: the limit is
what a replica can afford) and one time limit. Trivy never reaches out on its own:
checks are the embedded ones, the vulnerability database comes only from
`db_repository` (as a Harbor proxy serves it) and is downloaded by `refresh_db`
into a staging directory, then swapped into the cache while no scan reads it;
scans themselves always run with `--skip-db-update`.

When no database can be had, image scans still look for secrets,
misconfigurations and licenses, and say that vulnerabilities were not assessed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ..domain.findings import Finding
from .database import DB_DIRECTORY, DbVersion, cached_db_version
from .db_gate import DbGate
from .errors import TrivyError, TrivyFailed
from .process import ProcessObserver, TrivyOutput, run_trivy
from .report import parse_report
from .results import ImageScanResult
from .sources import ImageSource, LayoutImage, RegistryImage, on_loopback

ALL_SCANNERS = "vuln,secret,misconfig,license"
WITHOUT_VULNERABILITIES = "secret,misconfig,license"
DEFAULT_DB_RETRY_AFTER_S = 60.0
# Trivy's own deadline sits past ours, so ours decides and kills the process group.
_TRIVY_DEADLINE_MARGIN_S = 30


def _now() -> datetime:
    return datetime.now(UTC)


def _checked_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise ValueError(f"manifest file name must be a relative path without '..': {name!r}")
    return path


def _write_files(directory: Path, files: Mapping[str, str]) -> None:
    for name, content in files.items():
        path = directory / _checked_relative(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def _swap_db(staging: Path, cache_dir: Path) -> None:
    current = cache_dir / DB_DIRECTORY
    retired = cache_dir / f".{DB_DIRECTORY}-retired"
    shutil.rmtree(retired, ignore_errors=True)
    if current.exists():
        current.rename(retired)
    (staging / DB_DIRECTORY).rename(current)
    shutil.rmtree(retired, ignore_errors=True)


class TrivyRunner:
    """Runs the Trivy binary for the scanner service (see the module's docstring).

    `cache_dir` is this runner's own: the database and Trivy's layer cache live
    there. `insecure_registries` lets Trivy speak plain http to registries (a
    local registry in tests, an http Harbor). `observer` hears of every process.
    """

    def __init__(
        self,
        binary: Path,
        *,
        cache_dir: Path,
        db_repository: str | None,
        max_concurrent: int,
        timeout_s: float,
        insecure_registries: bool = False,
        db_retry_after_s: float = DEFAULT_DB_RETRY_AFTER_S,
        observer: ProcessObserver | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._binary = binary
        self._cache_dir = cache_dir
        self._db_repository = db_repository
        self._timeout_s = timeout_s
        self._insecure = insecure_registries
        self._db_retry_after_s = db_retry_after_s
        self._observer = observer
        self._slots = asyncio.Semaphore(max_concurrent)
        self._db_gate = DbGate()
        self._db_refresh = asyncio.Lock()
        self._db_failure: tuple[float, str] | None = None
        self._trivy_version: str | None = None

    # -- public API ---------------------------------------------------------------

    async def scan_image(
        self,
        reference: str,
        *,
        registry_username: str | None = None,
        registry_password: str | None = None,
    ) -> ImageScanResult:
        """Scan the image `reference` straight from its registry.

        Raises TrivyFailed (naming the cause: unknown image, registry refused,
        unreadable layers), TrivyTimedOut, TrivyReportInvalid.
        """
        return await self.scan(RegistryImage(reference, registry_username, registry_password))

    async def scan_layout(self, path: Path) -> ImageScanResult:
        """Scan the OCI image layout at `path`; raises as `scan_image` does."""
        return await self.scan(LayoutImage(path))

    async def scan(self, source: ImageSource) -> ImageScanResult:
        """Scan an image for vulnerabilities, secrets, misconfigurations and licenses."""
        started = time.monotonic()
        db, reason = await self._db_for_scan()
        scanners = ALL_SCANNERS if db is not None else WITHOUT_VULNERABILITIES
        arguments = self._image_arguments("json", scanners) + self._source_arguments(source)
        async with self._db_gate.reading():
            if db is not None:
                # A refresh may have swapped the database in meanwhile; this is the one read.
                db = await self.db_version() or db
            output = await self._run(arguments, source=source)
        report = parse_report(output.stdout, target=source.describe())
        return ImageScanResult(
            target=source.describe(),
            report=output.stdout,
            findings=report.findings,
            vulnerabilities_assessed=db is not None,
            not_assessed_reason=reason,
            db=db,
            trivy_version=report.trivy_version,
            repo_digests=report.repo_digests,
            seconds=time.monotonic() - started,
        )

    async def sbom(self, source: ImageSource) -> bytes:
        """The image's CycloneDX (JSON) SBOM: its OS and language packages.

        Needs no vulnerability database. Raises as `scan` does.
        """
        # Listing packages needs no scanner but one must be named; license adds
        # license data to the components.
        arguments = self._image_arguments("cyclonedx", "license") + self._source_arguments(source)
        output = await self._run(arguments, source=source)
        return output.stdout

    async def scan_config_files(
        self, files: Mapping[str, str], *, misconfig_scanners: Sequence[str] = ("kubernetes",)
    ) -> list[Finding]:
        """Failed misconfiguration checks of rendered manifests (file name → YAML).

        Finding targets are the given file names. Raises ValueError on a file name
        that is absolute or climbs out with '..'; TrivyFailed, TrivyTimedOut,
        TrivyReportInvalid as `scan` does.
        """
        with tempfile.TemporaryDirectory(prefix="mlplane-manifests-") as directory:
            await asyncio.to_thread(_write_files, Path(directory), files)
            arguments = ["config", *self._common_arguments(), "--format", "json"]
            arguments += ["--misconfig-scanners", ",".join(misconfig_scanners), directory]
            output = await self._run(arguments, target=f"{len(files)} manifest file(s)")
        return list(parse_report(output.stdout, target="manifests").findings)

    async def db_version(self) -> DbVersion | None:
        """The vulnerability database the cache holds now; None when it holds none."""
        return await asyncio.to_thread(cached_db_version, self._cache_dir)

    async def refresh_db(self, *, force: bool = False) -> DbVersion | None:
        """Fetch the database from `db_repository` when none is cached, it is due, or `force`.

        Returns the database the cache holds afterwards (None without a repository
        and without a cached one). Compare its `updated_at` with the last one seen
        to know when deployed images need a rescan. Raises TrivyFailed or
        TrivyTimedOut when the repository cannot give one; the cache keeps what it had.
        """
        async with self._db_refresh:
            current = await self.db_version()
            fresh = current is not None and not current.due(_now())
            if self._db_repository is None or (fresh and not force):
                return current
            try:
                downloaded = await self._download_db(self._db_repository)
            except TrivyError as error:
                self._db_failure = (time.monotonic(), error.detail)
                raise
            self._db_failure = None
            return downloaded

    async def trivy_version(self) -> str:
        """Trivy's version (`trivy --version --format json`), asked once."""
        if self._trivy_version is None:
            # With our cache named, Trivy reads nothing under ~/.cache/trivy.
            arguments = ["--version", "--format", "json", "--cache-dir", str(self._cache_dir)]
            output = await self._run(arguments, target="trivy --version")
            self._trivy_version = parse_version(output.stdout)
        return self._trivy_version

    # -- internals ----------------------------------------------------------------

    def _common_arguments(self) -> list[str]:
        """Flags every scan takes (`trivy config` knows no others)."""
        deadline = math.ceil(self._timeout_s) + _TRIVY_DEADLINE_MARGIN_S
        return [
            "--cache-dir",
            str(self._cache_dir),
            "--skip-check-update",
            # Exceptions are the scanner's policy, never a .trivyignore lying around.
            "--ignorefile",
            "",
            "--timeout",
            f"{deadline}s",
        ]

    def _image_arguments(self, output_format: str, scanners: str) -> list[str]:
        return [
            "image",
            *self._common_arguments(),
            "--no-progress",
            "--skip-java-db-update",
            "--skip-db-update",
            "--offline-scan",
            "--format",
            output_format,
            "--scanners",
            scanners,
        ]

    @staticmethod
    def _source_arguments(source: ImageSource) -> list[str]:
        if isinstance(source, LayoutImage):
            return ["--input", str(source.path)]
        return ["--image-src", "remote", source.reference]

    def _environment(self, source: ImageSource | None) -> dict[str, str]:
        # Ambient TRIVY_* settings must not change what a scan does.
        env = {key: value for key, value in os.environ.items() if not key.startswith("TRIVY_")}
        if self._insecure or (isinstance(source, RegistryImage) and on_loopback(source)):
            env["TRIVY_INSECURE"] = "true"
        if isinstance(source, RegistryImage) and source.username is not None:
            # By environment, never the command line: argv is visible to every user.
            env["TRIVY_USERNAME"] = source.username
            env["TRIVY_PASSWORD"] = source.password or ""
        return env

    async def _run(
        self,
        arguments: Sequence[str],
        *,
        source: ImageSource | None = None,
        target: str | None = None,
    ) -> TrivyOutput:
        async with self._slots:
            return await run_trivy(
                self._binary,
                arguments,
                env=self._environment(source),
                timeout_s=self._timeout_s,
                target=target or (source.describe() if source is not None else "trivy"),
                observer=self._observer,
            )

    async def _download_db(self, repository: str) -> DbVersion | None:
        await asyncio.to_thread(self._cache_dir.mkdir, parents=True, exist_ok=True)
        staging = Path(
            await asyncio.to_thread(tempfile.mkdtemp, prefix=".db-download-", dir=self._cache_dir)
        )
        try:
            arguments = ["image", "--download-db-only", "--db-repository", repository]
            arguments += ["--cache-dir", str(staging), "--no-progress"]
            # As a source, so a database on a loopback registry is fetched over http too.
            await self._run(
                arguments,
                source=RegistryImage(repository),
                target=f"vulnerability database {repository}",
            )
            downloaded = await asyncio.to_thread(cached_db_version, staging)
            if downloaded is None:
                raise TrivyFailed(
                    target=f"vulnerability database {repository}",
                    exit_code=0,
                    cause="the download left no readable trivy.db and metadata.json",
                    stderr_tail="",
                )
            async with self._db_gate.replacing():
                await asyncio.to_thread(_swap_db, staging, self._cache_dir)
            return downloaded
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _db_for_scan(self) -> tuple[DbVersion | None, str | None]:
        """The database a scan can use now, or None and why vulnerabilities go unassessed.

        After a failed download, scans use what the cache holds (even if due)
        and do not ask the repository again until `db_retry_after_s` has passed.
        """
        failure = self._db_failure
        recently_failed = (
            failure is not None and time.monotonic() - failure[0] < self._db_retry_after_s
        )
        if recently_failed:
            assert failure is not None
            current = await self.db_version()
            return (current, None) if current is not None else (None, failure[1])
        try:
            current = await self.refresh_db()
        except TrivyError as error:
            current = await self.db_version()
            return (current, None) if current is not None else (None, error.detail)
        if current is None:
            return None, "no vulnerability database is cached and no db_repository is configured"
        return current, None


def parse_version(stdout: bytes) -> str:
    """Trivy's version from `trivy --version --format json` output."""
    try:
        document = json.loads(stdout)
    except ValueError:
        document = None
    version = document.get("Version") if isinstance(document, dict) else None
    if not isinstance(version, str):
        raise TrivyFailed(
            target="trivy --version",
            exit_code=0,
            cause=f"unexpected output: {stdout[:200]!r}",
            stderr_tail="",
        )
    return version
