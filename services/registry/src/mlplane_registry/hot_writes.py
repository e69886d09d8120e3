"""The registry's hot write, answered before the full app: a new version.

Creating versions is what CI does many times a day, and on it FastAPI's dependency
solving and middleware were half of the request's CPU (py-spy, `bench/registry.py`).
The hot route does what `api.create_version` does, with the same body model, the
same use case and the same answer, for a caller whose gateway-signed identity
verifies, names a team and holds `models:write`. Whatever it cannot do (a body that
does not validate, a model that does not exist, an artifact refused) it passes on
before committing anything, and the full route answers it with its errors. Once the
unit of work has committed it answers, errors included: the full route must never
create the version a second time.
"""

from __future__ import annotations

import logging

from mlplane_contracts.scopes import MODELS_WRITE
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.caller import IdentityVerifier
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.hot_path import HotAnswer, HotRequest, HotRoute
from mlplane_runtime.problem import internal_error_response
from mlplane_runtime.uow import UnitOfWorkFactory
from pydantic import ValidationError

from mlplane_registry.deps import HostedRegistry
from mlplane_registry.domain import MAX_DNS_LABEL, Artifact, ModelVersion
from mlplane_registry.hot_reads import team_caller
from mlplane_registry.schemas import VersionCreate, VersionOut
from mlplane_registry.service import RegistryService

_log = logging.getLogger("mlplane.registry")


async def register_version(
    service: RegistryService, team: str, name: str, body: VersionCreate, principal: str
) -> ModelVersion:
    """The version `body` asks for, registered by `principal` (the full route's use too)."""
    return await service.register_version(
        team,
        name,
        framework=body.framework.value,
        artifact=Artifact(
            body.artifact.uri,
            body.artifact.size_bytes,
            body.artifact.sha256,
            body.artifact.media_type,
        ),
        lineage=body.lineage.to_domain(),
        registered_by=principal,
        signature=body.signature,
        tags=dict(body.tags),
        status_message=body.status_message,
    )


def hot_writes(
    registry: HostedRegistry, writers: UnitOfWorkFactory, verifier: IdentityVerifier
) -> list[HotRoute]:
    """The hot write routes of one hosted registry, checking callers with `verifier`."""

    async def create_version(request: HotRequest) -> HotAnswer | None:
        name = request.params["name"]
        caller = team_caller(verifier, request, MODELS_WRITE)
        if caller is None or caller.team is None or len(name) > MAX_DNS_LABEL:
            return None
        try:
            body = VersionCreate.model_validate_json(request.body)
        except ValidationError:
            return None
        async with writers() as uow:
            try:
                version = await register_version(
                    registry.service(uow), caller.team, name, body, caller.principal
                )
            except MlplaneError:
                return None  # rolled back: the full route answers with its error
            # Made before the commit: past it, nothing may fail into a second try.
            answer = HotAnswer(
                VersionOut.of(version).model_dump_json().encode(),
                headers=(
                    (b"etag", f'"{version.etag}"'.encode()),
                    (b"location", f"models/{name}/versions/{version.version}".encode()),
                ),
                status=201,
            )
            try:
                await uow.commit()
            except Exception as exc:
                # Committed or not, it must not be tried again by the full route.
                _log.error("creating a version of %s failed at commit", name, exc_info=exc)
                failed = internal_error_response(request.path)
                return HotAnswer(
                    bytes(failed.body), content_type=b"application/problem+json", status=500
                )
        return answer

    return [
        HotRoute(
            "/models/{name}/versions",
            create_version,
            patterns={"name": DNS_LABEL_PATTERN},
            method="POST",
        )
    ]
