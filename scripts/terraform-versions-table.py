#!/usr/bin/env python3
"""Writes the compatibility table of docs/guides/terraform-versions.md from the results
that acceptance-tests/tests/terraform_versions.rs records (target/terraform-versions.json),
so the guide says what the test saw, never a hand-typed claim.

    python3 scripts/terraform-versions-table.py [RESULTS.json]          # rewrite the table
    python3 scripts/terraform-versions-table.py --check [RESULTS.json]  # exit 1 if stale
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs/guides/terraform-versions.md"
BEGIN = "<!-- matrix:begin (scripts/terraform-versions-table.py writes this table) -->"
END = "<!-- matrix:end -->"
MARK = {"works": "works", "refused": "refused", "FAILED": "FAILED"}


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def table(results):
    versions = results["versions"]
    lines = [
        "| | " + " | ".join(f"Terraform {v}" for v in versions) + " |",
        "|---|" + "---|" * len(versions),
    ]
    for f in results["features"]:
        row = []
        for v in versions:
            r = f["results"].get(v, {"outcome": "not run", "note": ""})
            row.append(cell(f"**{MARK.get(r['outcome'], r['outcome'])}**: {r['note']}"))
        lines.append(f"| {cell(f['title'])} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    src = pathlib.Path(paths[0]) if paths else ROOT / "target/terraform-versions.json"
    results = json.loads(src.read_text())
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"{DOC}: the table markers are missing")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table(results)}{END}{tail}"
    if check:
        if new != doc:
            sys.stderr.write(f"{DOC.relative_to(ROOT)} does not match {src}\n")
            return 1
        return 0
    DOC.write_text(new)
    print(DOC.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
