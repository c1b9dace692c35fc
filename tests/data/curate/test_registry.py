"""The step registry: a step is one decorated class; the curate package has no import cycles."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import pretrain.data.curate as curate_pkg
from pretrain.configlib import ConfigError
from pretrain.data.curate import CurateConfig, curate
from pretrain.data.curate.registry import Step, build_step, register, step_classes


@dataclass
class _ShoutOptions:
    max_upper: float = 0.5


@register("test_shouting")
class _Shouting(Step):
    Options = _ShoutOptions

    def __call__(self, doc):
        letters = [c for c in doc.text if c.isalpha()]
        if letters and sum(c.isupper() for c in letters) / len(letters) > self.o.max_upper:
            return "shouting", "too many capitals"
        return None


def test_registered_step_runs_from_config(tmp_path: Path):
    assert "test_shouting" in step_classes() and "minhash_dedup" in step_classes()
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "HELLO THERE EVERYONE"}\n{"text": "a calm sentence"}\n', encoding="utf-8")
    stats = curate([src], tmp_path / "o", CurateConfig(steps=[{"type": "test_shouting"}]), workers=1, progress=False)
    assert (stats["documents_in"], stats["kept"], stats["removed"], stats["quarantined"]) == (2, 1, 1, 0)
    assert stats["steps"][0]["reasons"]["shouting"]["documents"] == 1


def test_unknown_type_and_double_registration():
    with pytest.raises(ConfigError, match=r"steps\[0\]\.type"):
        build_step({"type": "no_such_step"}, "steps[0]")
    with pytest.raises(ValueError, match="registered twice"):
        register("test_shouting")(type("Other", (Step,), {}))


def _imports(path: Path, pkg: str, modules: set[str]) -> set[str]:
    """Modules of the curate package imported at module level (imports inside functions are lazy)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(pkg):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out |= subs or {node.module}  # `from pkg import submodule` depends on the submodule
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith(pkg))
    return out


def test_no_import_cycles_in_curate():
    root = Path(curate_pkg.__file__).parent
    pkg = curate_pkg.__name__
    mods = {}
    for f in root.rglob("*.py"):
        rel = f.relative_to(root).with_suffix("")
        name = ".".join([pkg, *rel.parts]).removesuffix(".__init__")
        mods[name] = f
    graph = {m: {d for d in _imports(f, pkg, set(mods)) if d in mods and d != m} for m, f in mods.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, m, d]))
            if d not in state:
                visit(d, [*trail, m])
        state[m] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m, [])
