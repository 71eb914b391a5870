#!/usr/bin/env python3
"""Each config key's dotted path is spelled once: in the key table (src/io/config_keys.{h,cpp}).

Every other string literal of src/ and analysis/ (C++, CUDA and the Python package; tests and
comments aside) that names a dotted trial or sweep key is reported: code names a key through the
constants of io/config_keys.h (md::io::key_path), and the Python package through the generated schema
(analysis/metadistill_analysis/config_schema.json), which is where this checker reads the paths.
Single-segment sweep keys ("name", "grid") are too common a word to check this way.

Usage: tools/check_key_paths.py [REPOSITORY_ROOT]
Exit status 1 when a path is spelled outside the table, 0 otherwise.
"""
import ast
import json
import pathlib
import re
import sys

TABLE = {"src/io/config_keys.h", "src/io/config_keys.cpp"}
SCHEMA = "analysis/metadistill_analysis/config_schema.json"


def cpp_strings(text):
    """(line, contents) of each string literal of C++ source, comments and char literals skipped."""
    out = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not text[i - 1].isalnum()):
            open_paren = text.find("(", i + 2)
            delimiter = ")" + text[i + 2:open_paren] + '"'
            end = text.find(delimiter, open_paren)
            end = n if end < 0 else end
            out.append((line, text[open_paren + 1:end]))
            line += text.count("\n", i, end)
            i = end + len(delimiter)
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if c == '"':
                out.append((line, text[i + 1:j]))
            i = j + 1
        else:
            i += 1
    return out


def python_strings(text):
    """(line, contents) of each string constant of a Python module, docstrings aside."""
    tree = ast.parse(text)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def check(root):
    keys = json.loads((root / SCHEMA).read_text())
    paths = sorted({key["path"] for key in keys if "." in key["path"]}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, paths)) + r")(?![\w])")
    files = [p for base in ("src", "analysis") for p in sorted((root / base).rglob("*"))
             if p.suffix in {".h", ".cpp", ".cu", ".cuh", ".py"}]
    problems = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        if relative in TABLE or "/tests/" in relative:
            continue
        text = path.read_text(errors="replace")
        strings = python_strings(text) if path.suffix == ".py" else cpp_strings(text)
        for number, contents in strings:
            for match in pattern.finditer(contents):
                problems.append(f"{relative}:{number}: spells the key {match.group(1)} "
                                f"(name it through md::io::key_path / the schema)")
    return problems, len(files)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1])
    problems, count = check(root.resolve())
    for problem in problems:
        print(problem)
    print(f"check_key_paths: {count} files, {len(problems)} key path(s) spelled outside the table")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
