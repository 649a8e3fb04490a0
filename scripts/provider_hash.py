#!/usr/bin/env python3
"""Terraform's `h1:` hash of a provider package zip (what .terraform.lock.hcl records and a
network mirror's VERSION.json lists).

Terraform computes it with golang.org/x/mod/sumdb/dirhash (HashZip with Hash1): for every
entry of the zip, by name, one line "SHA256HEX  NAME\\n"; sorted; the SHA-256 of those
lines, base64, prefixed "h1:". It covers the files' contents and names, not the zip's
own bytes (that is the `zh:` hash, the zip's plain SHA-256), so a package unpacked from
the zip hashes the same as the zip.

Usage: provider_hash.py ZIP...   (prints "h1:...  ZIP" per zip, or just the hash for one)
"""
import base64
import hashlib
import sys
import zipfile


def hash1(zip_path):
    lines = []
    with zipfile.ZipFile(zip_path) as z:
        names = [i.filename for i in z.infolist()]
        for name in sorted(names):
            if "\n" in name:
                raise SystemExit(f"{zip_path}: file name with a newline: {name!r} (dirhash refuses these)")
            with z.open(name) as f:
                digest = hashlib.sha256()
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            lines.append(f"{digest.hexdigest()}  {name}\n")
    summary = hashlib.sha256("".join(lines).encode()).digest()
    return "h1:" + base64.b64encode(summary).decode()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if len(sys.argv) == 2:
        print(hash1(sys.argv[1]))
    else:
        for p in sys.argv[1:]:
            print(f"{hash1(p)}  {p}")
