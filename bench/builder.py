"""Builder benchmark: building and pushing a model layer next to a raw upload of the same bytes.

An artifact of random bytes (1 GiB; `--quick`: 256 MiB) is written to a file, then
pushed twice to the same OCI registry, each push in its own child process:

- mlplane: the file streamed through the builder's `LayerStream` (reproducible tar,
  ISA-L gzip, sha256 of both) into `OciClient.push_blob_stream`, the builder's path;
- raw (the baseline): the file's bytes streamed into `push_blob_stream` as they
  are, with the same client, reader and upload chunk size (16 MiB): no tar, no gzip.

Throughput is artifact bytes ÷ wall time of the push in MB/s (10^6 bytes), timed in
the child from the first read to the registry's answer to the last PUT; start-up
and imports are not counted. Peak RSS is the child's, sampled with psutil every
20 ms from before it starts. Each side runs `--rounds` times (default 2) alternately
and reports its best round, so a neighbour's burst on this shared machine penalises
neither. The registry is the one at MLPLANE_BENCH_OCI_REGISTRY (default
http://127.0.0.1:5000) when it answers, else a docker-registry started here on a
free port and stopped after.

The last line printed is one JSON object: both sides' figures, the baseline's
name, `ratio` = mlplane MB/s ÷ raw MB/s, and `targets` (the builder issue's: ratio ≥ 0.7).

    python bench/builder.py [--quick] [--size-mib N] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlplane_testing.oci_registry import DistributionRegistry, registry_answers

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = "http://127.0.0.1:5000"
CHUNK_SIZE = 16 * 2**20
TARGET_RATIO = 0.7
CHILD_TIMEOUT_S = 600
SAMPLE_EVERY_S = 0.02
BASELINE = "raw chunked upload (same OciClient, reader and 16 MiB chunks; no tar, no gzip)"


@contextlib.contextmanager
def registry() -> Iterator[str]:
    url = os.environ.get("MLPLANE_BENCH_OCI_REGISTRY", DEFAULT_REGISTRY).rstrip("/")
    if registry_answers(url):
        yield url
        return
    started = DistributionRegistry.start()
    try:
        yield started.url
    finally:
        started.stop()


def write_artifact(directory: Path, size: int) -> Path:
    path = directory / "model.bin"
    piece = 16 * 2**20
    with path.open("wb") as out:
        for start in range(0, size, piece):
            out.write(os.urandom(min(piece, size - start)))
    return path


class PeakRss:
    """Samples one process's RSS in a thread until stopped; keeps the largest."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(SAMPLE_EVERY_S)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_child(mode: str, artifact: Path, url: str) -> dict[str, Any]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.support.builder_push",
            mode,
            str(artifact),
            url,
            str(CHUNK_SIZE),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    sampler = PeakRss(child.pid)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{mode} child did not get ready")
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline()
        code = child.wait(timeout=CHILD_TIMEOUT_S)
    finally:
        peak = sampler.stop()
        if child.poll() is None:
            child.kill()
            child.wait()
    if code != 0 or not line:
        raise RuntimeError(f"{mode} child exited with {code}")
    figures: dict[str, Any] = json.loads(line)
    figures["mb_per_s"] = round(figures["artifact_bytes"] / figures["seconds"] / 1e6, 1)
    figures["seconds"] = round(figures["seconds"], 3)
    figures["cpu_s"] = round(figures["cpu_s"], 2)
    figures["peak_rss_mb"] = round(peak / 2**20, 1)
    return figures


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    top = max(rounds, key=lambda figures: figures["mb_per_s"])
    return {**top, "rounds_mb_per_s": [r["mb_per_s"] for r in rounds]}


def main(size: int, rounds: int) -> dict[str, Any]:
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="mlplane-bench-builder-") as directory,
        registry() as url,
    ):
        artifact = write_artifact(Path(directory), size)
        runs: dict[str, list[dict[str, Any]]] = {"raw": [], "mlplane": []}
        for round_number in range(rounds):
            for mode in ("raw", "mlplane"):
                figures = run_child(mode, artifact, url)
                print(f"round {round_number + 1} {mode}: {figures}", file=sys.stderr)
                runs[mode].append(figures)
    mlplane, raw = best(runs["mlplane"]), best(runs["raw"])
    ratio = round(mlplane["mb_per_s"] / raw["mb_per_s"], 3)
    return {
        "benchmark": "builder",
        "artifact_bytes": size,
        "chunk_size": CHUNK_SIZE,
        "registry": url,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "mlplane": {
            "name": "LayerStream (tar + ISA-L gzip) -> OciClient.push_blob_stream",
            **mlplane,
        },
        "baseline": {"name": BASELINE, **raw},
        "ratio": ratio,
        "targets": {"throughput_0_7_of_raw": {"met": ratio >= TARGET_RATIO, "ratio": ratio}},
        "wall_s": round(time.perf_counter() - began, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run under 60 s (256 MiB)")
    parser.add_argument("--size-mib", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    mib = args.size_mib or (256 if args.quick else 1024)
    print(json.dumps(main(mib * 2**20, args.rounds)))
