"""The REST facade: `/v1/<service>/...` and `/api/2.0/mlflow/...` forwarded to the services.

`routes.facade_router` is the entry point; `upstreams`, `breaker`, `retry`,
`identity` and `proxy` are its parts.
"""
