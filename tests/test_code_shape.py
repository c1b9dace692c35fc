"""Checks on the code's shape that keep design debt visible: no function over 80 lines (an explicit,
short allow-list names the ones left and why), no private name imported across modules, no stage package
that takes or reads the whole run config, docs/architecture.md names only paths that exist, and every test
folder mirrors a package of src/."""

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


# Each stage takes its own config. The stage packages below never see the top-level run config
# (pretrain.config.RunConfig): they neither import pretrain.config, nor annotate a parameter with
# RunConfig, nor read "<x>.<section>.<field>" of it duck-typed. The composition roots split it: the CLI,
# quickstart.py, speedrun.py, scaling/ (a sweep builds and trains whole runs) and the module named here.
STAGE_PACKAGES = ("data", "tokenizer", "model", "train", "eval", "report")
COMPOSITION_ROOTS: dict[str, str] = {
    "pretrain/train/api.py": "train() and build_trainer(): a training run built from a RunConfig",
}


def run_config_sections() -> dict[str, set[str]]:
    """{section name: its field names} of RunConfig, read from the dataclasses (so a new section counts)."""
    import dataclasses
    import typing

    from pretrain.config import RunConfig

    hints = typing.get_type_hints(RunConfig)
    return {f.name: {g.name for g in dataclasses.fields(hints[f.name])}
            for f in dataclasses.fields(RunConfig) if dataclasses.is_dataclass(hints[f.name])}


def _section_read(node: ast.AST, sections: dict[str, set[str]]) -> str | None:
    """"section.field" when ``node`` reads a run config's field through its section, attribute or key."""
    def name(n: ast.AST) -> str | None:
        if isinstance(n, ast.Attribute):
            return n.attr
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str):
            return n.slice.value
        return None

    inner = getattr(node, "value", None)
    field, section = name(node), name(inner) if inner is not None else None
    if field is None or section not in sections or field not in sections[section]:
        return None
    base = getattr(inner, "value", None)
    if isinstance(base, ast.Name) and base.id == "self":  # an object's own attribute (self.tokenizer.vocab_size)
        return None
    return f"{section}.{field}"


def run_config_uses(root: Path, sections: dict[str, set[str]]) -> set[str]:
    """Every place below ``root`` (a folder holding ``pretrain/``) where a stage package sees the run
    config: "path:line: what"."""
    found = set()
    for package in STAGE_PACKAGES:
        for path in sorted((root / "pretrain" / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in COMPOSITION_ROOTS:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                what = None
                if isinstance(node, ast.ImportFrom) and (node.module == "pretrain.config" or (
                        node.module == "pretrain" and any(a.name == "config" for a in node.names))):
                    what = "imports pretrain.config"
                elif isinstance(node, ast.Import) and any(a.name == "pretrain.config" for a in node.names):
                    what = "imports pretrain.config"
                elif isinstance(node, ast.arg) and node.annotation is not None \
                        and "RunConfig" in ast.unparse(node.annotation):
                    what = f"parameter {node.arg}: RunConfig"
                elif isinstance(node, (ast.Attribute, ast.Subscript)):
                    read = _section_read(node, sections)
                    what = f"reads the run config's {read}" if read else None
                if what:
                    found.add(f"{rel}:{node.lineno}: {what}")
    return found


def test_no_stage_sees_the_run_config():
    found = run_config_uses(SRC, run_config_sections())
    assert not found, ("stage code that takes or reads the whole run config (give it its own section and "
                       f"explicit arguments from the composition root): {sorted(found)}")
    assert all((SRC / p).is_file() for p in COMPOSITION_ROOTS), "a composition root named here moved"


def test_the_run_config_scan_sees_each_kind_of_use(tmp_path):
    sections = run_config_sections()
    assert {"data", "model", "train", "eval", "tokenizer"} <= set(sections) and "lr" in sections["train"]
    for package in STAGE_PACKAGES:
        (tmp_path / "pretrain" / package).mkdir(parents=True)
    (tmp_path / "pretrain" / "train" / "api.py").write_text("from pretrain.config import RunConfig\n")
    (tmp_path / "pretrain" / "train" / "loop.py").write_text(
        "class Loop:\n"
        "    def __init__(self, cfg, tokenizer):\n"
        "        self.t = cfg.train\n"  # the section alone is not a field read
        "        self.every = cfg.eval.interval\n"
        "        self.vocab = self.tokenizer.vocab_size\n"  # an object's own attribute: not the run config
        "        self.mix = self.cfg.data.mixture\n"
        "        self.lr = cfg['train']['lr']\n"
        "        self.train_lr = cfg.train.lr_schedule_of_my_own\n")  # not a field of TrainConfig
    (tmp_path / "pretrain" / "eval" / "run.py").write_text(
        "from pretrain import config\n\ndef run(cfg: 'RunConfig'):\n    import pretrain.config\n")
    assert run_config_uses(tmp_path, sections) == {
        "pretrain/train/loop.py:4: reads the run config's eval.interval",
        "pretrain/train/loop.py:6: reads the run config's data.mixture",
        "pretrain/train/loop.py:7: reads the run config's train.lr",
        "pretrain/eval/run.py:1: imports pretrain.config",
        "pretrain/eval/run.py:3: parameter cfg: RunConfig",
        "pretrain/eval/run.py:4: imports pretrain.config",
    }


def test_the_import_contract_fails_on_a_stage_that_imports_the_run_config(tmp_path):
    """The same rule as import-linter checks it in CI (make lint-imports): a copy of the package with one
    planted import of pretrain.config in a stage breaks the contract, and the report names the import."""
    import os
    import shutil
    import subprocess
    import sys

    shutil.copytree(SRC / "pretrain", tmp_path / "src" / "pretrain",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (tmp_path / "src" / "pretrain" / "eval" / "planted.py").write_text("from pretrain.config import RunConfig\n")
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = []
    for line in text[text.index("[tool.importlinter]"):].splitlines():
        if line.startswith("[") and "importlinter" not in line:
            break
        section.append(line)
    (tmp_path / "pyproject.toml").write_text("\n".join(section) + "\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    res = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", "pyproject.toml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "pretrain.eval.planted -> pretrain.config" in out, out
    assert "each stage takes its own config" in out and "BROKEN" in out, out


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
