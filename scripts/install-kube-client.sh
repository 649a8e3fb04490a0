#!/usr/bin/env bash
# Installs the official Kubernetes Python client (PyPI `kubernetes`) into a cached venv,
# for acceptance tests that check a kubeconfig loads with its loader. Idempotent; prints
# the venv's python.
set -euo pipefail

cache="${STRATA_CACHE:-$HOME/.cache/strata}"
venv="$cache/kube-client-venv"
want="37.0.2"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$want')" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p "$cache"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes==$want" >&2
echo "$venv/bin/python"
