#!/usr/bin/env python3
"""The files generated from the key table (src/io/config_keys.cpp) by `metadistill config`.

- docs/config.md: the key tables between "<!-- BEGIN GENERATED keys:SECTION ... -->" and
  "<!-- END GENERATED keys:SECTION -->" are `metadistill config --markdown`, and the block
  keys:defaults is `metadistill config --defaults`; the prose around them is written by hand.
- analysis/metadistill_analysis/config_schema.json: `metadistill config --schema`, the copy the
  Python package reads (it must work without the binary).

--check (the ctest config_generated_fresh) fails when either is stale, and also checks that the
schema is JSON with the fields every key must have, that `config --defaults` reads back as the
same config, and that bad arguments exit 2. --write regenerates both files.
Usage: tools/config_generated.py METADISTILL (--check | --write) [--root REPOSITORY_ROOT]
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

BLOCK = re.compile(
    r"<!-- BEGIN GENERATED keys:(?P<name>\w+) [^\n]*-->\n(?P<body>.*?)"
    r"<!-- END GENERATED keys:(?P=name) -->\n",
    re.DOTALL,
)
SCHEMA_COPY = pathlib.Path("analysis/metadistill_analysis/config_schema.json")
DOC = pathlib.Path("docs/config.md")
REGENERATE = "tools/config_generated.py build/metadistill --write"


def run(binary, *arguments):
    return subprocess.run([binary, *arguments], capture_output=True, text=True)


def output_of(binary, *arguments):
    result = run(binary, *arguments)
    if result.returncode != 0:
        sys.exit(f"{binary} {' '.join(arguments)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def blocks(text):
    return {match["name"]: match.group(0) for match in BLOCK.finditer(text)}


def defaults_block(defaults):
    """The example trial config of docs/config.md: `config --defaults` in a YAML code block."""
    return ("<!-- BEGIN GENERATED keys:defaults (metadistill config --defaults) -->\n"
            f"```yaml\n{defaults}```\n<!-- END GENERATED keys:defaults -->\n")


def check_schema(text):
    """Problems with the schema's content (it must parse as JSON)."""
    problems = []
    keys = json.loads(text)
    paths = [key["path"] for key in keys]
    if len(paths) != len(set(paths)):
        problems.append("the schema lists a path twice")
    for key in keys:
        for field in ("scope", "path", "type", "default", "in_trial_id", "doc"):
            if field not in key:
                problems.append(f"schema: {key.get('path')} has no {field}")
        if key.get("in_trial_id") not in ("yes", "non_default", "no"):
            problems.append(f"schema: {key.get('path')}: in_trial_id {key.get('in_trial_id')}")
    scopes = {key["scope"] for key in keys}
    if scopes != {"trial", "sweep"}:
        problems.append(f"schema scopes {sorted(scopes)}")
    return problems


def check_command(binary):
    """Problems with `metadistill config` itself: exit statuses, --defaults read back."""
    problems = []
    for arguments in ([], ["--schema", "--defaults"], ["--bogus"], ["extra"]):
        status = run(binary, "config", *arguments).returncode
        if status != 2:
            problems.append(f"config {' '.join(arguments)} exited {status}, not 2")
    defaults = output_of(binary, "config", "--defaults")
    body = "".join(line for line in defaults.splitlines(True) if not line.startswith("#"))
    with tempfile.TemporaryDirectory() as directory:
        trial = pathlib.Path(directory, "defaults.yaml")
        trial.write_text(defaults)
        sweep = pathlib.Path(directory, "sweep.yaml")
        sweep.write_text(f"base: {trial}\n")
        printed = output_of(binary, "sweep", str(sweep), "--out", str(pathlib.Path(directory, "o")),
                            "--dry-run")
    resolved = printed[printed.index("\n", printed.index("# resolved config")) + 1:]
    if resolved != body:
        problems.append("config --defaults does not read back as the same config")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metadistill")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent,
                        type=pathlib.Path)
    args = parser.parse_args()

    schema = output_of(args.metadistill, "config", "--schema")
    generated = blocks(output_of(args.metadistill, "config", "--markdown"))
    generated["defaults"] = defaults_block(output_of(args.metadistill, "config", "--defaults"))
    doc_path = args.root / DOC
    doc = doc_path.read_text()
    present = blocks(doc)
    problems = []
    for name in generated.keys() - present.keys():
        problems.append(f"{DOC} has no generated block keys:{name}")
    for name in present.keys() - generated.keys():
        problems.append(f"{DOC} has a block keys:{name} that the table does not generate")

    if args.write:
        for name, block in generated.items():
            if name in present:
                doc = doc.replace(present[name], block)
        doc_path.write_text(doc)
        (args.root / SCHEMA_COPY).write_text(schema)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0

    for name in generated.keys() & present.keys():
        if generated[name] != present[name]:
            problems.append(f"{DOC}: the table keys:{name} is stale")
    copy_path = args.root / SCHEMA_COPY
    if not copy_path.exists() or copy_path.read_text() != schema:
        problems.append(f"{SCHEMA_COPY} is stale")
    problems += check_schema(schema)
    problems += check_command(args.metadistill)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"regenerate with: {REGENERATE}", file=sys.stderr)
        return 1
    print(f"{DOC} and {SCHEMA_COPY} are fresh; config --defaults reads back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
