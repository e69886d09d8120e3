"""Reference profiles from a dataset in object storage (Parquet or CSV) or uploaded, and
Parquet files of samples named in object storage: each read only from the caller's
team's locations."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pa_csv
from mlplane_drift.blobs import S3BlobStore

from .conftest import Hosted, as_
from .support.data import parquet, registered, table


async def _put(blobs: S3BlobStore, key: str, data: bytes) -> str:
    return await blobs.put(key, data, "application/octet-stream")


def _csv(data: pa.Table) -> bytes:
    out = io.BytesIO()
    pa_csv.write_csv(data, out)
    return out.getvalue()


async def test_a_reference_is_built_from_parquet_in_the_teams_location(
    hosted: Hosted, team: str
) -> None:
    await hosted.deliver(registered(team))
    uri = await _put(hosted.blobs, f"teams/{team}/data/train.parquet", parquet(table(800, 1)))
    answer = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        json={"uri": uri, "features": [{"name": "amount"}, {"name": "channel"}]},
        headers=as_(team),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["source"] == uri
    assert answer.json()["rows"] == 800
    assert answer.json()["features"] == [
        {"name": "amount", "kind": "numeric"},
        {"name": "channel", "kind": "categorical"},
    ]
    read = await hosted.http.get("/models/fraud/versions/1/reference", headers=as_(team))
    assert read.json() == answer.json()


async def test_a_reference_is_built_from_csv_uploaded_or_stored(hosted: Hosted, team: str) -> None:
    await hosted.deliver(registered(team))
    csv = _csv(table(300, 2))
    uploaded = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        content=csv,
        headers={**as_(team), "content-type": "text/csv"},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["rows"] == 300
    uri = await _put(hosted.blobs, f"teams/{team}/train.csv", csv)
    stored = await hosted.http.put(
        "/models/fraud/versions/1/reference", json={"uri": uri}, headers=as_(team)
    )
    assert stored.status_code == 200, stored.text
    assert [f["name"] for f in stored.json()["features"]] == ["amount", "score", "channel"]


async def test_datasets_outside_the_teams_locations_are_refused(hosted: Hosted, team: str) -> None:
    await hosted.deliver(registered(team))
    other = await _put(hosted.blobs, "teams/someone-else/train.parquet", parquet(table(50, 1)))
    refused = await hosted.http.put(
        "/models/fraud/versions/1/reference", json={"uri": other}, headers=as_(team)
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "not under your team's data locations" in refused.json()["detail"]
    sneaky = f"s3://{hosted.bucket}/drift/teams/{team}/../someone-else/train.parquet"
    assert (
        await hosted.http.put(
            "/models/fraud/versions/1/reference", json={"uri": sneaky}, headers=as_(team)
        )
    ).status_code == 422
    missing = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        json={"uri": f"s3://{hosted.bucket}/drift/teams/{team}/none.parquet"},
        headers=as_(team),
    )
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]


async def test_unreadable_datasets_get_a_clear_error(hosted: Hosted, team: str) -> None:
    await hosted.deliver(registered(team))
    garbage = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        content=b"PAR1 this is not parquet",
        headers={**as_(team), "content-type": "application/vnd.apache.parquet"},
    )
    assert garbage.status_code == 422
    assert garbage.headers["content-type"] == "application/problem+json"
    assert "Parquet" in garbage.json()["detail"]
    unnamed = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        json={"uri": f"s3://{hosted.bucket}/drift/teams/{team}/data"},
        headers=as_(team),
    )
    assert unnamed.status_code == 422
    assert "cannot tell the format" in unnamed.json()["detail"]
    odd = await hosted.http.put(
        "/models/fraud/versions/1/reference",
        content=b"a,b\n1,2\n",
        headers={**as_(team), "content-type": "application/xml"},
    )
    assert odd.status_code == 422
    unknown = await hosted.http.put(
        "/models/fraud/versions/9/reference",
        content=parquet(table(10, 1)),
        headers={**as_(team), "content-type": "application/vnd.apache.parquet"},
    )
    assert unknown.status_code == 404


async def test_a_parquet_file_of_samples_fills_a_window(hosted: Hosted, team: str) -> None:
    await hosted.ready(team, table(2000, seed=1))
    samples = table(1000, seed=7, shift=2.0).append_column("request_id", pa.array(range(1000)))
    uri = await _put(hosted.blobs, f"teams/{team}/served/2026-12-05.parquet", parquet(samples))
    answer = await hosted.http.post(
        "/samples/parquet",
        json={"model": "fraud", "version": 1, "environment": "prod", "uri": uri},
        headers=as_(team),
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1000
    assert answer.json()["window_closed"] is True
    assert await hosted.judge() == ["alerted"]
    lacking = await _put(
        hosted.blobs, f"teams/{team}/served/partial.parquet", parquet(samples.drop(["score"]))
    )
    refused = await hosted.http.post(
        "/samples/parquet",
        json={"model": "fraud", "version": 1, "environment": "prod", "uri": lacking},
        headers=as_(team),
    )
    assert refused.status_code == 422
    assert "lacks features of the reference profile: score" in refused.json()["detail"]
