#!/usr/bin/env bash
# Make sure the command-line tools the deployment tests (tests/deploy) run are here:
# promtool (Debian's `prometheus` package) and kubectl with its built-in Kustomize.
# hadolint comes with the dev dependencies (.venv/bin/hadolint). Idempotent: installs
# only what is missing, so a second run changes nothing.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "ensure-tools: installing ${missing[*]} (apt)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-tools: not root; install ${missing[*]} yourself (apt-get install)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: promtool is all the tests need, not a running Prometheus.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

promtool --version 2>&1 | head -n1
kubectl kustomize --help >/dev/null
