#!/usr/bin/python3
"""Meta-test over the public API (after curl's tests 1119/1139).

For every PM_API function declared in include/perfmetrics/*.h:
  documented  a comment block closes right before its declaration, or before
              the group of consecutive declarations it belongs to (no blank line
              in between; a one-line typedef may sit in the group, as the
              callback type before the function that takes it);
  versioned   lib/libperfmetrics.map exports it in a version node;
  changelog   CHANGELOG.md mentions its name.
For every symbol the version script exports:
  declared    a public header declares it.

One check per symbol per rule; prints each failure with file:line, then
"meta_symbols: N passed, N failed". Exit status 0 only if all passed.
"""
import os
import re
import sys

ROOT = os.environ.get("PM_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER_DIR = os.path.join(ROOT, "include", "perfmetrics")
MAP_FILE = os.path.join(ROOT, "lib", "libperfmetrics.map")
CHANGELOG = os.path.join(ROOT, "CHANGELOG.md")

DECL_NAME = re.compile(r"\bPM_API\b[^;(]*?\b(pm_\w+)\s*\(")


def rel(path):
    return os.path.relpath(path, ROOT)


def header_decls():
    """Yields (name, path, line_no, documented) for each PM_API declaration."""
    for fname in sorted(os.listdir(HEADER_DIR)):
        if not fname.endswith(".h"):
            continue
        path = os.path.join(HEADER_DIR, fname)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        # Mark the lines that belong to a PM_API declaration (it may wrap).
        in_decl = [False] * len(lines)
        starts = []
        i = 0
        while i < len(lines):
            if re.match(r"\s*PM_API\b", lines[i]):
                start = i
                text = lines[i]
                while ";" not in lines[i] and i + 1 < len(lines):
                    i += 1
                    text += " " + lines[i].strip()
                for k in range(start, i + 1):
                    in_decl[k] = True
                m = DECL_NAME.search(text)
                if m:
                    starts.append((m.group(1), start))
            i += 1
        for name, start in starts:
            yield name, path, start + 1, documented(lines, in_decl, start)


def documented(lines, in_decl, start):
    """True if a comment closes before the declaration's group."""
    j = start - 1
    while j >= 0:
        s = lines[j].strip()
        if s.endswith("*/"):
            return True
        if in_decl[j] or (s.startswith("typedef") and s.endswith(";")):
            j -= 1
            continue
        return False
    return False



def map_symbols():
    """Yields (name, line_no) for every symbol in a global: section of the map."""
    with open(MAP_FILE, encoding="utf-8") as f:
        text = f.read()
    # Blank out comments but keep line numbers.
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    section = None
    for no, line in enumerate(text.split("\n"), 1):
        line = re.sub(r"#.*", "", line).strip()
        for tok in re.findall(r"[A-Za-z_][\w.*]*\s*:|[^\s;{}]+\s*;|[{}]", line):
            tok = tok.strip()
            if tok.endswith(":"):
                section = tok[:-1].strip()
            elif tok == "}":
                section = None
            elif tok.endswith(";") and section == "global":
                yield tok[:-1].strip(), no


def main():
    passed = failed = 0

    def check(ok, msg):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            if msg:
                print("  " + msg)

    decls = list(header_decls())
    exported = {}
    for name, no in map_symbols():
        exported.setdefault(name, no)
    try:
        with open(CHANGELOG, encoding="utf-8") as f:
            changelog = f.read()
    except OSError:
        changelog = None
        print("  %s: missing; every symbol fails its changelog check" % rel(CHANGELOG))

    declared = {}
    for name, path, no, is_documented in decls:
        where = "%s:%d" % (rel(path), no)
        if name in declared:
            check(False, "%s: %s declared twice (first at %s)" % (where, name, declared[name]))
            continue
        declared[name] = where
        check(is_documented, "%s: %s has no comment block before its declaration" % (where, name))
        check(name in exported, "%s: %s is missing from %s" % (where, name, rel(MAP_FILE)))
        if changelog is None:
            check(False, "")  # reported once above
        else:
            check(re.search(r"\b%s\b" % re.escape(name), changelog),
                  "%s: %s is not mentioned in %s" % (where, name, rel(CHANGELOG)))
    for name, no in sorted(exported.items(), key=lambda kv: kv[1]):
        check(name in declared,
              "%s:%d: %s is exported but no public header declares it" % (rel(MAP_FILE), no, name))

    print("meta_symbols: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
