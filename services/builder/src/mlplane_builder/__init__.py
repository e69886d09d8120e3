"""mlplane builder: daemonless, reproducible OCI images of model versions."""
