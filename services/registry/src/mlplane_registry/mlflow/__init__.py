"""The MLflow-compatible model-registry API: `api` (routes), `service` (use cases),
`schemas` (requests), and how MLflow's registry maps onto mlplane's, one module per
job: `errors`, `names`, `tags`, `entities`, `search`, `paging` (pure, no I/O).

MLflow's registry and mlplane's do not hold quite the same things, so the MLflow
API maps them as follows:

- a registered model is a model of the caller's team; its name must be a DNS-1123
  label (MLflow accepts any string, mlplane refuses others with
  INVALID_PARAMETER_VALUE);
- a version's `source` is its artifact URI (an absolute URI, `s3://...`), its
  `run_link` the CI run URL of its lineage, its `user_id` who registered it;
- what mlplane requires and MLflow does not carry (the artifact's sha256 and size,
  the git repository and commit) comes in as version tags with the `mlplane.`
  prefix (`INPUT_TAGS`); they fill the artifact and lineage, and are not stored as
  tags;
- what MLflow carries and mlplane has no field for (a version's `description` and
  `run_id`) is kept in the version's tags under `mlplane.mlflow.`, hidden from the
  MLflow tags;
- stages are deprecated in MLflow: every version is in stage `None`, status `READY`.
"""
