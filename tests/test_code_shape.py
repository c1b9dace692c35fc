"""Checks on the code's shape that keep design debt visible: no function over 80 lines (an explicit,
short allow-list names the ones left and why), no private name imported across modules,
docs/architecture.md names only paths that exist, and every test folder mirrors a package of src/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_LINES = 80

# Functions still over MAX_LINES, by "path/from/src:qualified.name", with the reason each is left.
TOO_LONG_ALLOWED: dict[str, str] = {}


def long_functions(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """{"path:qualified.name": lines} of every function or method under ``root`` longer than ``limit``
    lines (decorators excluded, docstring included)."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, rel: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef) and child.end_lineno - child.lineno + 1 > limit:
                    found[f"{rel}:{name}"] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.", rel)
            else:
                visit(child, prefix, rel)

    for path in sorted(root.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8")), "", path.relative_to(root.parent).as_posix())
    return found


def test_no_function_over_80_lines_but_the_allowed():
    over = long_functions(SRC / "pretrain")
    new = {k: n for k, n in over.items() if k not in TOO_LONG_ALLOWED}
    assert not new, f"functions over {MAX_LINES} lines (split them, or allow-list one with a reason): {new}"
    stale = set(TOO_LONG_ALLOWED) - set(over)
    assert not stale, f"allow-listed but no longer over {MAX_LINES} lines (drop them from the list): {stale}"


def test_the_scan_finds_a_long_function(tmp_path):
    pkg = tmp_path / "pretrain"
    pkg.mkdir()
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    (pkg / "mod.py").write_text(f"class A:\n    def long(self):\n{body}\n\n    def short(self):\n        return 1\n")
    assert long_functions(pkg) == {"pretrain/mod.py:A.long": MAX_LINES + 1}


# `pretrain/...` paths (files and folders) and bare `name.py` names in backticks or table cells.
PKG_PATH = re.compile(r"(?<![\w/.])pretrain/[\w/]*[\w/](?:\.py)?")
BARE_PY = re.compile(r"`([\w/]+\.py)`")


def architecture_paths(text: str) -> tuple[set[str], set[tuple[str, str]]]:
    """(the `pretrain/...` paths, (package, name) pairs) named by the text. A bare ``name.py`` belongs to
    the last `pretrain/...` folder named before it in the same paragraph or table row."""
    paths: set[str] = set()
    bare: set[tuple[str, str]] = set()
    for para in re.split(r"\n\s*\n|\n(?=\|)", text):
        package = ""
        for m in re.finditer(rf"{PKG_PATH.pattern}|{BARE_PY.pattern}", para):
            name = m.group(1) or m.group(0)
            if name.startswith("pretrain/"):
                paths.add(name)
                package = name if not name.endswith(".py") else name.rsplit("/", 1)[0]
            elif package:
                bare.add((package.rstrip("/"), name))
    return paths, bare


def test_architecture_doc_names_only_paths_that_exist():
    paths, bare = architecture_paths((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert len(paths) > 20 and len(bare) > 40  # the parser still finds what the doc names
    missing = sorted(p for p in paths if not (SRC / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    # a bare name is found anywhere below its package (a file may sit in a subfolder such as steps/)
    lost = sorted(f"{pkg}: {name}" for pkg, name in bare if not any((SRC / pkg).rglob(name)))
    assert not lost, f"docs/architecture.md names files its package does not hold: {lost}"


def test_the_doc_check_sees_a_wrong_path():
    paths, bare = architecture_paths("| x | `pretrain/data/curate/` (`registry.py`, `nowhere.py`) |\n"
                                     "`pretrain/nope.py` holds it.")
    assert paths == {"pretrain/data/curate/", "pretrain/nope.py"}
    assert bare == {("pretrain/data/curate", "registry.py"), ("pretrain/data/curate", "nowhere.py")}
    assert not (SRC / "pretrain/nope.py").exists()


# Private names imported from another module of the package, by "importer: module.name", with why.
PRIVATE_IMPORTS_ALLOWED: dict[str, str] = {}


def private_imports(root: Path) -> set[str]:
    """Every ``from pretrain.x import _name`` below ``root``: a private name used across modules."""
    found = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pretrain"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.add(f"{path.relative_to(root.parent).as_posix()}: {node.module}.{alias.name}")
    return found


def test_no_private_name_crosses_modules_but_the_allowed():
    found = private_imports(SRC / "pretrain")
    crossing = found - set(PRIVATE_IMPORTS_ALLOWED)
    assert not crossing, f"private names imported across modules (make them public or move them): {sorted(crossing)}"
    stale = set(PRIVATE_IMPORTS_ALLOWED) - found
    assert not stale, f"allow-listed but no longer imported (drop them from the list): {sorted(stale)}"


def test_the_private_import_scan_sees_one(tmp_path):
    pkg = tmp_path / "pretrain"
    pkg.mkdir()
    (pkg / "a.py").write_text("from pretrain.b import _hidden, public\nfrom pretrain.c import __version__\n")
    assert private_imports(pkg) == {"pretrain/a.py: pretrain.b._hidden"}


# Folders of tests/ that mirror nothing: shared helpers, test data (and whatever they hold), caches.
NOT_MIRRORED = {"helpers", "fixtures", "__pycache__"}


def stray_test_folders(tests: Path, package: Path) -> list[str]:
    """The folders below ``tests`` that name no package or module below ``package``:
    ``tests/data/curate/io`` needs ``pretrain/data/curate/io/__init__.py``, and ``tests/speedrun`` may
    stand for ``pretrain/speedrun.py``."""
    stray = []
    for folder in sorted(p for p in tests.rglob("*") if p.is_dir()):
        rel = folder.relative_to(tests)
        if any(part in NOT_MIRRORED or part.startswith(".") for part in rel.parts):
            continue
        target = package.joinpath(*rel.parts)
        if not ((target / "__init__.py").is_file() or target.with_suffix(".py").is_file()):
            stray.append(rel.as_posix())
    return stray


def test_test_folders_mirror_src():
    stray = stray_test_folders(ROOT / "tests", SRC / "pretrain")
    assert not stray, (f"test folders that name no package or module under src/pretrain/ (name a folder for "
                       f"what its tests test; shared helpers go to tests/helpers/): {stray}")


def test_the_layout_check_sees_a_stray_folder(tmp_path):
    pkg = tmp_path / "src" / "pretrain"
    for sub in ("data", "data/curate", "data/curate/io"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "speedrun.py").write_text("")
    tests = tmp_path / "tests"
    for folder in ("data/curate/io", "data/curate/fixtures/plugins", "speedrun", "helpers",
                   "data/__pycache__", ".pytest_cache", "foundation", "data/curate/rules", "speedrun/peers"):
        (tests / folder).mkdir(parents=True)
    assert stray_test_folders(tests, pkg) == ["data/curate/rules", "foundation", "speedrun/peers"]
