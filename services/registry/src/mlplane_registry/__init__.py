"""mlplane registry: the system of record for models, versions, aliases and artifacts."""
