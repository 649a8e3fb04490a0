#!/usr/bin/env bash
# `make release`: the provider packaged the way the Terraform registry (and goreleaser's
# provider template) publishes one, plus a provider mirror users `terraform init` from.
#
#   DIST/terraform-provider-strata_VERSION_OS_ARCH.zip   terraform-provider-strata_vVERSION
#                                                        and strata-agent-static beside it
#   DIST/terraform-provider-strata_VERSION_manifest.json registry manifest (protocol versions)
#   DIST/terraform-provider-strata_VERSION_SHA256SUMS    sha256sum of the zips and the manifest
#   DIST/terraform-provider-strata_VERSION_SHA256SUMS.sig  detached binary GPG signature of it
#   DIST/signing-key.asc                                 the ASCII-armoured public key
#   DIST/mirror/registry.terraform.io/strata-iac/strata/ the zips (a filesystem_mirror, packed
#        layout) with index.json and VERSION.json (a static network_mirror)
#
# VERSION is the workspace's Cargo.toml `version`, checked against what the built provider
# reports (`--version`). The signing key comes from the environment, never the repository:
#   STRATA_GPG_KEY_FILE  an armoured secret key (imported into a temporary GNUPGHOME), or
#   STRATA_GPG_KEY_ID    a secret key in the keyring (GNUPGHOME or ~/.gnupg).
# DIST_DIR (default dist/) moves the output; versions already in DIST/mirror stay there,
# so a mirror can offer several versions (index.json lists every one it holds).
# STRATA_RELEASE_PLATFORMS (default "linux_amd64 linux_arm64 darwin_amd64 darwin_arm64")
# lists the OS_ARCH targets; those whose Rust target is not installed are skipped with a
# message, and the manifest, SHA256SUMS and mirror cover what was built.
# STRATA_RELEASE_PROFILE=dev packs the debug build instead of `cargo build --release`: the
# acceptance test install_from_mirror does, because `make test` has built it already and
# a release build costs minutes there; a release is always the default, `release`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
dist="${DIST_DIR:-$root/dist}"
platforms="${STRATA_RELEASE_PLATFORMS:-linux_amd64 linux_arm64 darwin_amd64 darwin_arm64}"
profile="${STRATA_RELEASE_PROFILE:-release}"
case "$profile" in
  release) profile_flag=(--release) profile_dir=release ;;
  dev) profile_flag=() profile_dir=debug ;;
  *) echo "release: STRATA_RELEASE_PROFILE must be release or dev, not '$profile'" >&2; exit 1 ;;
esac
name=terraform-provider-strata
mirror_rel=registry.terraform.io/strata-iac/strata

die() { echo "release: $*" >&2; exit 1; }

for tool in gpg zip sha256sum python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (make deps installs gnupg, zip)"
done

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"

# The key first: a release that cannot be signed is not worth building.
cleanup=()
# A temporary GNUPGHOME's gpg-agent is stopped before its directory goes.
trap '[ -n "${STRATA_GPG_KEY_FILE:-}" ] && gpgconf --kill gpg-agent 2>/dev/null; rm -rf "${cleanup[@]}"' EXIT
if [ -n "${STRATA_GPG_KEY_FILE:-}" ]; then
  [ -r "$STRATA_GPG_KEY_FILE" ] || die "STRATA_GPG_KEY_FILE=$STRATA_GPG_KEY_FILE is not a readable file"
  GNUPGHOME=$(mktemp -d)
  cleanup+=("$GNUPGHOME")
  export GNUPGHOME
  gpg --batch --quiet --import "$STRATA_GPG_KEY_FILE" 2>/dev/null ||
    die "gpg could not import the key in STRATA_GPG_KEY_FILE=$STRATA_GPG_KEY_FILE"
  key=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1=="fpr"{print $10; exit}')
  [ -n "$key" ] || die "STRATA_GPG_KEY_FILE=$STRATA_GPG_KEY_FILE holds no secret key"
elif [ -n "${STRATA_GPG_KEY_ID:-}" ]; then
  key="$STRATA_GPG_KEY_ID"
  gpg --batch --list-secret-keys "$key" >/dev/null 2>&1 ||
    die "no secret key '$key' (STRATA_GPG_KEY_ID) in the keyring ${GNUPGHOME:-~/.gnupg}"
else
  die "SHA256SUMS must be signed: set STRATA_GPG_KEY_ID (a secret key in GNUPGHOME or ~/.gnupg) or STRATA_GPG_KEY_FILE (an armoured secret key file)"
fi

# The Rust target of each OS_ARCH (what the registry calls a platform).
rust_target() {
  case "$1" in
    linux_amd64) echo x86_64-unknown-linux-gnu ;;
    linux_arm64) echo aarch64-unknown-linux-gnu ;;
    darwin_amd64) echo x86_64-apple-darwin ;;
    darwin_arm64) echo aarch64-apple-darwin ;;
    *) die "unknown platform '$1' in STRATA_RELEASE_PLATFORMS (known: linux_amd64 linux_arm64 darwin_amd64 darwin_arm64)" ;;
  esac
}
for platform in $platforms; do rust_target "$platform" >/dev/null; done
host=$(rustc -vV | sed -n 's/^host: //p')
installed_targets=$(rustup target list --installed 2>/dev/null || true)

# The host's build always: it is the one that can run, so the version and protocol
# the release is named after are read from it. Built without --target so it shares
# target/release with `cargo build --release`.
echo "==> cargo build ${profile_flag[*]} -p $name" >&2
cargo build --quiet "${profile_flag[@]}" -p "$name" --bin "$name"
host_bin="$target_dir/$profile_dir/$name"
reported=$("$host_bin" --version)
reported_version=$(sed -n "1s/^$name //p" <<<"$reported")
protocol=$(sed -n 's/^plugin protocol //p' <<<"$reported")
[ "$reported_version" = "$version" ] ||
  die "Cargo.toml says version $version but $host_bin --version says '$reported_version'"
[ -n "$protocol" ] || die "$host_bin --version names no plugin protocol: $reported"
manifest_json="{\"version\":1,\"metadata\":{\"protocol_versions\":[\"$protocol.0\"]}}"
# The registry reads the manifest from the repository root; it must say the same.
[ "$(tr -d ' \n' < terraform-registry-manifest.json)" = "$manifest_json" ] ||
  die "terraform-registry-manifest.json does not match what the provider speaks: $manifest_json"

# The agent goes to the nodes, not to the machine running Terraform: every platform's
# zip carries the same Linux x86_64 static build (a node of another architecture uses
# the resource's agent_binary).
echo "==> static strata-agent" >&2
stage_agent=$(mktemp -d)
cleanup+=("$stage_agent")
bash scripts/build-agent-static.sh "$stage_agent" >/dev/null
agent="$stage_agent/strata-agent-static"

mkdir -p "$dist" "$dist/mirror/$mirror_rel"
rm -f "$dist/${name}_${version}_"*
built=()
for platform in $platforms; do
  triple=$(rust_target "$platform")
  if [ "$triple" = "$host" ]; then
    bin="$host_bin"
  elif grep -qx "$triple" <<<"$installed_targets"; then
    echo "==> cargo build ${profile_flag[*]} --target $triple ($platform)" >&2
    cargo build --quiet "${profile_flag[@]}" -p "$name" --bin "$name" --target "$triple"
    bin="$target_dir/$triple/$profile_dir/$name"
  else
    echo "release: skipping $platform: Rust target $triple is not installed here (rustup target add $triple)" >&2
    continue
  fi
  stage=$(mktemp -d)
  cleanup+=("$stage")
  install -m 0755 "$bin" "$stage/${name}_v${version}"
  # A debug build carries ~150 MB of debug info that every init would unpack and hash.
  if [ "$profile" = dev ]; then strip --strip-debug "$stage/${name}_v${version}"; fi
  install -m 0755 "$agent" "$stage/strata-agent-static"
  zip_name="${name}_${version}_${platform}.zip"
  # -j: no directory entries (Terraform's h1 hash covers every zip entry by name); -X: no
  # extra attributes beyond the Unix mode, which keeps the executables executable.
  (cd "$stage" && zip -q -X -j "$dist/$zip_name" "${name}_v${version}" strata-agent-static)
  cp "$dist/$zip_name" "$dist/mirror/$mirror_rel/$zip_name"
  built+=("$platform")
done
[ "${#built[@]}" -gt 0 ] || die "no platform of '$platforms' can be built here"

manifest="${name}_${version}_manifest.json"
echo "$manifest_json" > "$dist/$manifest"
sums="${name}_${version}_SHA256SUMS"
(cd "$dist" && sha256sum "${name}_${version}_"*.zip "$manifest" > "$sums")
gpg --batch --yes --quiet --local-user "$key" --detach-sign --output "$dist/$sums.sig" "$dist/$sums" ||
  die "gpg could not sign $sums with key $key"
gpg --batch --yes --armor --export "$key" > "$dist/signing-key.asc"
[ -s "$dist/signing-key.asc" ] || die "gpg exported no public key for $key"

# The network mirror's JSON (Terraform's provider network mirror protocol): index.json
# lists every version the mirror holds; VERSION.json each platform's archive, with the
# h1 hash (over the zip's contents) and the zh hash (the zip's SHA-256, as in SHA256SUMS).
python3 - "$dist/mirror/$mirror_rel" "$name" "$root/scripts" <<'PY'
import hashlib, json, os, re, sys
mirror, name, scripts = sys.argv[1:4]
sys.path.insert(0, scripts)
from provider_hash import hash1
archives = {}
pattern = re.compile(re.escape(name) + r"_(?P<version>[^_]+)_(?P<platform>[a-z0-9]+_[a-z0-9]+)\.zip$")
for f in sorted(os.listdir(mirror)):
    m = pattern.match(f)
    if not m:
        continue
    path = os.path.join(mirror, f)
    with open(path, "rb") as z:
        zh = "zh:" + hashlib.sha256(z.read()).hexdigest()
    archives.setdefault(m["version"], {})[m["platform"]] = {"url": f, "hashes": [hash1(path), zh]}
for version, platforms in archives.items():
    with open(os.path.join(mirror, f"{version}.json"), "w") as out:
        json.dump({"archives": platforms}, out, indent=2)
        out.write("\n")
with open(os.path.join(mirror, "index.json"), "w") as out:
    json.dump({"versions": {v: {} for v in archives}}, out, indent=2)
    out.write("\n")
PY

echo "release $version (${built[*]}) in $dist:" >&2
(cd "$dist" && ls -1 "${name}_${version}_"* signing-key.asc) >&2
echo "$dist"
