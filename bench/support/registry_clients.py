"""The same registry operations as REST calls to mlplane's registry and to MLflow's.

Each call returns the `Answer` unread for status; the load generator counts
anything but 2xx as an error. Versions carry the same facts on both sides: an
artifact URI, the commit, the CI run and two tags (MLflow keeps them as tags).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Protocol

from bench.support.identity import SignedIdentity
from bench.support.lean_http import Answer, LeanHttp

TEAM = "bench"
ALIAS = "champion"
SEARCH_PAGE = 10


def _commit(model: str, salt: int) -> str:
    return hashlib.sha1(f"{model}/{salt}".encode()).hexdigest()


class RegistryClient(Protocol):
    """One registry's REST API, as the benchmark drives it."""

    name: str

    async def create_model(self, http: LeanHttp, model: str) -> Answer: ...

    async def create_version(self, http: LeanHttp, model: str, salt: int) -> Answer: ...

    async def set_alias(self, http: LeanHttp, model: str, version: int) -> Answer: ...

    async def get_version(self, http: LeanHttp, model: str, version: int) -> Answer: ...

    async def get_by_alias(self, http: LeanHttp, model: str) -> Answer: ...

    async def search(self, http: LeanHttp, model: str) -> Answer: ...

    def page_length(self, search_answer: Answer) -> int:
        """How many versions a `search` answer holds."""
        ...


class MlplaneRegistry:
    """mlplane's registry API under `/registry`, as team `bench`."""

    name = "mlplane"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/registry"
        # The registry answers only the gateway's signed identity (renewed per run).
        self.headers: Mapping[str, str] | Callable[[], Mapping[str, str]] = SignedIdentity(
            "registry", TEAM
        )

    async def create_model(self, http: LeanHttp, model: str) -> Answer:
        return await http.post(f"{self.base_url}/models", json={"name": model})

    async def create_version(self, http: LeanHttp, model: str, salt: int) -> Answer:
        commit = _commit(model, salt)
        body = {
            "framework": "sklearn",
            "artifact": {
                "uri": f"s3://models/{model}/{commit}/model.pkl",
                "size_bytes": 1024 + salt,
                "sha256": hashlib.sha256(commit.encode()).hexdigest(),
            },
            "lineage": {
                "git_repository": "https://git.example.com/team/bench",
                "commit_sha": commit,
                "ci_run_url": f"https://ci.example.com/runs/{salt}",
            },
            "tags": {"stage": "candidate", "owner": "bench"},
        }
        return await http.post(f"{self.base_url}/models/{model}/versions", json=body)

    async def set_alias(self, http: LeanHttp, model: str, version: int) -> Answer:
        return await http.put(
            f"{self.base_url}/models/{model}/aliases/{ALIAS}", json={"version": version}
        )

    async def get_version(self, http: LeanHttp, model: str, version: int) -> Answer:
        return await http.get(f"{self.base_url}/models/{model}/versions/{version}")

    async def get_by_alias(self, http: LeanHttp, model: str) -> Answer:
        return await http.get(f"{self.base_url}/models/{model}/aliases/{ALIAS}")

    async def search(self, http: LeanHttp, model: str) -> Answer:
        return await http.get(
            f"{self.base_url}/versions", params={"model": model, "limit": SEARCH_PAGE}
        )

    def page_length(self, search_answer: Answer) -> int:
        return len(search_answer.json()["versions"])


class MlflowRegistry:
    """MLflow's REST API 2.0 model registry (`/api/2.0/mlflow/...`)."""

    name = "mlflow"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/api/2.0/mlflow"
        self.headers: dict[str, str] = {}

    async def create_model(self, http: LeanHttp, model: str) -> Answer:
        return await http.post(f"{self.base_url}/registered-models/create", json={"name": model})

    async def create_version(self, http: LeanHttp, model: str, salt: int) -> Answer:
        commit = _commit(model, salt)
        body = {
            "name": model,
            "source": f"s3://models/{model}/{commit}/model.pkl",
            "tags": [
                {"key": "mlflow.source.git.commit", "value": commit},
                {"key": "ci_run_url", "value": f"https://ci.example.com/runs/{salt}"},
                {"key": "stage", "value": "candidate"},
                {"key": "owner", "value": "bench"},
            ],
        }
        return await http.post(f"{self.base_url}/model-versions/create", json=body)

    async def set_alias(self, http: LeanHttp, model: str, version: int) -> Answer:
        return await http.post(
            f"{self.base_url}/registered-models/alias",
            json={"name": model, "alias": ALIAS, "version": str(version)},
        )

    async def get_version(self, http: LeanHttp, model: str, version: int) -> Answer:
        return await http.get(
            f"{self.base_url}/model-versions/get", params={"name": model, "version": str(version)}
        )

    async def get_by_alias(self, http: LeanHttp, model: str) -> Answer:
        return await http.get(
            f"{self.base_url}/registered-models/alias", params={"name": model, "alias": ALIAS}
        )

    async def search(self, http: LeanHttp, model: str) -> Answer:
        return await http.get(
            f"{self.base_url}/model-versions/search",
            params={"filter": f"name='{model}'", "max_results": SEARCH_PAGE},
        )

    def page_length(self, search_answer: Answer) -> int:
        return len(search_answer.json().get("model_versions", []))
