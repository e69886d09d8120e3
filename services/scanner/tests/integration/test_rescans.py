"""A new vulnerability database rescans the images that serve, and emits changed verdicts only."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from mlplane_testing.oci_registry import OciRegistryEndpoint, unique_repository

from ..conftest import MakeTrivyRunner, ScannerTestImages
from ..support import images
from ..support.registry import push_image
from ..support.trivy_db import db_artifact, write_db
from .conftest import ScannerUnderTest


async def test_a_new_database_rescans_deployed_images_and_emits_the_changed_verdict(
    scanner: ScannerUnderTest,
    test_images: ScannerTestImages,
    oci_registry: OciRegistryEndpoint,
    make_trivy_runner: MakeTrivyRunner,
    tmp_path: Path,
) -> None:
    # The first database knows the advisory: the deployed image fails.
    await scanner.deliver(scanner.built(test_images.vulnerable))
    await scanner.drain()
    await scanner.deliver(scanner.built(test_images.clean, model="other"))
    await scanner.drain()
    await scanner.deliver(scanner.deployed(test_images.vulnerable))
    first = scanner.make_watch(scanner.worker._runner)
    assert await first.check_database() == 0  # the first database seen: nothing to redo
    assert [e["verdict"] for e in await scanner.scanned_events()] == ["failed", "passed"]

    # A newer build of the database withdrew it.
    withdrawn = write_db(
        tmp_path,
        images.filler_advisories(3),
        updated_at=images.db_updated_at() + timedelta(hours=1),
    )
    repository = unique_repository("trivy-db-next")
    await push_image(oci_registry, repository, "2", db_artifact(withdrawn))
    runner = make_trivy_runner(db_repository=f"{oci_registry.host}/{repository}")
    watch = scanner.make_watch(runner)

    assert await watch.check_database() == 1  # only the deployed image
    assert await scanner.drain(scanner.make_worker(runner)) == 1
    events = await scanner.scanned_events()
    assert [e["verdict"] for e in events] == ["failed", "passed", "passed"]
    assert events[-1]["image"]["digest"] == test_images.vulnerable.split("@")[1]

    # The same database again: nothing is rescanned, nothing emitted.
    assert await watch.check_database() == 0
    assert await scanner.drain(scanner.make_worker(runner)) == 0
    assert len(await scanner.scanned_events()) == 3
