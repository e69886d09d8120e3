"""The services as the console reads and changes them: as the signed-in principal,
through the identity the facade signs, with the facade's scope rules.

A page never reaches a service any other way, so it can show or change nothing the
session's key could not through `/v1/<service>/...`: the same `required_scope`, the
same per-service signed identity (`X-Mlplane-Identity`), the same upstream clients,
timeouts and circuit breakers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER, PRINCIPAL_HEADER, TEAM_HEADER

from mlplane_gateway.auth.authentication import Gatekeeper
from mlplane_gateway.auth.principals import Principal, Scope
from mlplane_gateway.facade.proxy import service_path
from mlplane_gateway.facade.routes import required_scope
from mlplane_gateway.facade.wiring import Facade

MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
_MAX_DETAIL_CHARS: Final = 500

Query = Mapping[str, str | int | Sequence[str] | None]


class ServiceError(MlplaneError):
    """A service's refusal or failure, as the page shows it."""

    def __init__(self, status: int, title: str, detail: str, service: str) -> None:
        super().__init__(detail, service=service)
        self.status_code = status
        self.service_title = title
        self.service = service


class NotInstalled(ServiceError):
    """The service is not configured on this gateway (the facade's 503)."""

    def __init__(self, service: str) -> None:
        super().__init__(
            503, "Service not configured", f"the {service} service is not installed", service
        )


class Services:
    """Calls to the services for one principal."""

    def __init__(self, facade: Facade, principal: Principal) -> None:
        self._facade = facade
        self._principal = principal

    def installed(self, service: str) -> bool:
        return self._facade.upstreams.get(service) is not None

    async def get(self, service: str, path: str, query: Query | None = None) -> Any:
        return await self.call("GET", service, path, query=query)

    async def post(self, service: str, path: str, body: object | None = None) -> Any:
        return await self.call("POST", service, path, body=body)

    async def put(self, service: str, path: str, body: object | None = None) -> Any:
        return await self.call("PUT", service, path, body=body)

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        query: Query | None = None,
        body: object | None = None,
    ) -> Any:
        """The service's JSON answer (None for an empty one). Raises NotInstalled,
        Forbidden (the scope the facade would want), or ServiceError for its refusal."""
        return _json(await self.download(method, service, path, query=query, body=body))

    async def download(
        self,
        method: str,
        service: str,
        path: str,
        *,
        query: Query | None = None,
        body: object | None = None,
    ) -> bytes:
        """The service's answer as it sent it (a file to hand on); raises as `call`."""
        upstream = self._facade.upstreams.get(service)
        if upstream is None:
            raise NotInstalled(service)
        principal = self._principal
        Gatekeeper.check_scope(principal, Scope(required_scope(service, method, path)))
        encoded = service_path(path.lstrip("/"))
        if encoded is None:
            raise ServiceError(400, "Invalid path", "the path climbs out of the service", service)
        headers = {
            "accept": "application/json",
            IDENTITY_HEADER: self._facade.signer.token_for(
                audience=upstream.name,
                principal=principal.id,
                team=principal.team,
                scopes=[scope.value for scope in principal.scopes],
            ),
            PRINCIPAL_HEADER: principal.id,
        }
        if principal.team is not None:
            headers[TEAM_HEADER] = principal.team
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        raw_query = urlencode(_pairs(query), doseq=True).encode() if query else b""
        url = upstream.url_for(encoded, raw_query)
        permit = upstream.breaker.admit()
        if permit is None:
            raise ServiceError(
                503, "Service unavailable", f"the {service} service is failing", service
            )
        try:
            async with upstream.client.request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
                encoding = response.headers.get("content-encoding", "")
        except TimeoutError:
            upstream.breaker.record_failure(permit)
            raise ServiceError(
                504, "Gateway timeout", f"the {service} service did not answer in time", service
            ) from None
        except aiohttp.ClientError:
            upstream.breaker.record_failure(permit)
            raise ServiceError(
                502, "Bad gateway", f"the {service} service could not be reached", service
            ) from None
        except BaseException:
            upstream.breaker.release(permit)
            raise
        if status in (502, 503, 504):
            upstream.breaker.record_failure(permit)
        else:
            upstream.breaker.record_success(permit)
        if len(raw) > MAX_ANSWER_BYTES or encoding not in ("", "identity"):
            raise ServiceError(502, "Bad gateway", f"the {service} service's answer", service)
        if status >= 400:
            raise _refusal(status, _json(raw), service)
        return raw


def _pairs(query: Query) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if value is None or value == "":
            continue
        if isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(item)) for item in value)
    return pairs


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _refusal(status: int, document: Any, service: str) -> ServiceError:
    """A 4xx keeps the service's title and detail; a 5xx says only its status (its body
    may hold internals)."""
    if status < 500 and isinstance(document, dict):
        title = document.get("title")
        detail = document.get("detail") or document.get("message")
        if isinstance(detail, list):
            # A validation error: the fields and what is wrong with them.
            detail = "; ".join(
                f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg')}"
                for item in detail
                if isinstance(item, dict)
            )
        return ServiceError(
            status,
            title if isinstance(title, str) else "Refused",
            str(detail)[:_MAX_DETAIL_CHARS] if detail else f"the {service} service said {status}",
            service,
        )
    return ServiceError(
        status, "Service error", f"the {service} service answered {status}", service
    )
