#!/usr/bin/env python3
"""Checks the arrows between src/ modules (docs/architecture.md, "Modules and arrows").

Every `#include "<module>/..."` in src/ is an arrow from the including file's module to the
included one. An arrow the table below does not allow fails the check, unless it is listed in
KNOWN: arrows from before the modules had their own libraries, to be removed (issue 10). The
list only shrinks: an entry that no longer occurs fails the check too, so whoever removes an
arrow also removes its line here.

Usage: scripts/check-layers.py [src dir]   (exit 0: clean, 1: violations, printed)
"""
import os
import re
import sys

# Module of a file: its first folder under src/ (main.cc belongs to the composition).
def module_of(path):
    parts = path.split("/")
    if len(parts) == 1:
        return "server"
    return parts[0]


LOW = {"base", "loop", "config", "telemetry", "store"}
ALLOWED = {
    "base": set(),
    "loop": {"base"},
    "config": {"base", "loop"},
    "telemetry": {"base", "loop"},
    "store": {"base", "loop"},
    "net": LOW,
    "http": LOW | {"net"},
    "upstream": LOW | {"net", "http"},
    "proxy": LOW | {"net", "http", "upstream"},
    "filters": LOW | {"net", "http"},
    "llm": LOW | {"net", "http", "upstream"},
    "admin": LOW | {"net", "http"},
    "edge": LOW | {"net", "http", "upstream"},
    "server": {"base", "loop", "config", "telemetry", "store", "net", "http", "upstream", "proxy", "filters", "llm",
               "admin", "edge"},
}

# file -> module it may still include against the table (today's debt; see the docstring).
KNOWN = set()

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/')


def arrows(src):
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".h", ".cc")) or f.endswith("_test.cc"):
                continue
            path = os.path.relpath(os.path.join(root, f), src)
            here = module_of(path)
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                for line in fh:
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    included = line.split('"')[1]
                    there = module_of(included)
                    if there != here:
                        yield path, here, there, included


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    bad, seen = [], set()
    for path, here, there, included in arrows(src):
        if there in ALLOWED.get(here, set()):
            continue
        seen.add((path, there))
        if (path, there) not in KNOWN:
            bad.append(f"{path}: {here} -> {there} (includes {included})")
    stale = sorted(KNOWN - seen)
    for path, there in stale:
        bad.append(f"{path} -> {there} is listed in KNOWN but no longer occurs: remove it from scripts/check-layers.py")
    for line in bad:
        print(line)
    if bad:
        print(f"{len(bad)} layering problem(s); allowed arrows and the known debt: scripts/check-layers.py")
        return 1
    print(f"layers ok ({len(KNOWN)} known arrows left to remove)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
