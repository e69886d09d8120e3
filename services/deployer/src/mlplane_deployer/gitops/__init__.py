"""The GitOps repository: rendered files in, one commit per deployment change out."""
