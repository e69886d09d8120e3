"""Registering versions created with only a source: the registry reads and verifies them.

`tracking` is the MLflow tracking server's REST API (runs, logged models, artifacts),
`reading` reads a location in constant memory (S3, the tracking server) and hashes it,
`worker` is the registration job on the runtime's leased job worker. The pure rules
(which sources, which lineage, the directory digest) are `domain.registration`.
"""
