"""Datasets in object storage or in a request body, read with pyarrow: reference profiles
are built from them, and Parquet files of samples are summarised like any batch.

A dataset named by `s3://` URI must lie under one of the caller's team's locations. It
is streamed to a temporary file (bounded by `max_dataset_bytes`) and read from there in
record batches off the event loop, so neither the loop nor memory holds it whole.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlplane_drift.blobs import BlobStore, split_s3_uri
from mlplane_drift.domain.errors import InvalidDataset, InvalidLocation, LocationNotAllowed
from mlplane_drift.errors import DriftInputError
from mlplane_drift.profile import FeatureSpec, ReferenceProfile

PARQUET_TYPES = frozenset(
    {"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"}
)
CSV_TYPES = frozenset({"text/csv", "application/csv"})


class DatasetFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


def format_of_content_type(content_type: str) -> DatasetFormat | None:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in PARQUET_TYPES:
        return DatasetFormat.PARQUET
    if kind in CSV_TYPES:
        return DatasetFormat.CSV
    return None


def format_of_uri(uri: str) -> DatasetFormat:
    """The format a dataset's name says. Raises `InvalidLocation` when it says none."""
    name = uri.rsplit("/", 1)[-1].lower()
    if name.endswith((".parquet", ".pq")):
        return DatasetFormat.PARQUET
    if name.endswith(".csv"):
        return DatasetFormat.CSV
    raise InvalidLocation(
        f"cannot tell the format of {uri!r}: name it .parquet or .csv, or give `format`",
        uri=uri,
    )


def check_location(uri: str, allowed: Sequence[str]) -> None:
    """Raises `InvalidLocation` (not s3://bucket/key, or `..` in it) or
    `LocationNotAllowed` (outside every prefix of `allowed`)."""
    split_s3_uri(uri)
    if any(part in {"..", "."} for part in uri.removeprefix("s3://").split("/")):
        raise InvalidLocation(f"{uri!r} holds a relative path segment", uri=uri)
    if not any(uri.startswith(prefix) for prefix in allowed):
        raise LocationNotAllowed(
            f"{uri} is not under your team's data locations ({', '.join(allowed)})",
            uri=uri,
        )


def _profile(
    source: str | bytes, fmt: DatasetFormat, features: Sequence[FeatureSpec] | None
) -> ReferenceProfile:
    try:
        if fmt is DatasetFormat.PARQUET:
            return ReferenceProfile.from_parquet(source, features or None)
        return ReferenceProfile.from_csv(source, features or None)
    except DriftInputError as exc:
        raise InvalidDataset(exc.detail, **exc.extensions) from exc


async def profile_from_bytes(
    data: bytes, fmt: DatasetFormat, features: Sequence[FeatureSpec] | None = None
) -> ReferenceProfile:
    """A profile of an uploaded dataset. Raises `InvalidDataset`."""
    return await asyncio.to_thread(_profile, data, fmt, features)


async def profile_from_location(
    blobs: BlobStore,
    uri: str,
    fmt: DatasetFormat,
    max_bytes: int,
    features: Sequence[FeatureSpec] | None = None,
) -> ReferenceProfile:
    """A profile of the dataset at `uri` (already checked against the team's locations).

    Raises `InvalidDataset`, `BlobNotFound`, `DatasetTooLarge`, `DatasetsUnavailable`,
    `Unavailable`.
    """
    with tempfile.TemporaryDirectory(prefix="mlplane-drift-") as directory:
        path = Path(directory) / "dataset"
        await blobs.download(uri, path, max_bytes)
        return await asyncio.to_thread(_profile, str(path), fmt, features)


def _read_parquet(path: str, columns: Sequence[str]) -> pa.Table:
    try:
        parquet = pq.ParquetFile(path)
        present = set(parquet.schema_arrow.names)
        missing = [name for name in columns if name not in present]
        if missing:
            raise InvalidDataset(
                f"the file lacks features of the reference profile: {', '.join(missing[:10])}",
                missing_features=missing[:100],
            )
        return parquet.read(columns=list(columns))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidDataset(f"not a readable Parquet file: {exc}") from exc


async def parquet_from_location(
    blobs: BlobStore, uri: str, columns: Sequence[str], max_bytes: int
) -> pa.Table:
    """The `columns` of the Parquet file at `uri`. Raises `InvalidDataset` (unreadable,
    or a column missing), `BlobNotFound`, `DatasetTooLarge`, `Unavailable`."""
    with tempfile.TemporaryDirectory(prefix="mlplane-drift-") as directory:
        path = Path(directory) / "samples.parquet"
        await blobs.download(uri, path, max_bytes)
        return await asyncio.to_thread(_read_parquet, str(path), columns)
