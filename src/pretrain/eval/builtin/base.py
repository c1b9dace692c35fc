"""The built-in evaluation registry: what one evaluation of a checkpoint sees and the decorator that
registers it by name.

A built-in evaluation is one module in this package. Every module here is imported when the registry
is first asked, so adding one needs no edit anywhere else::

    # pretrain/eval/builtin/longest_word.py
    from pretrain.eval.builtin.base import BuiltinEval, EvalContext, register_eval

    @register_eval("longest_word", order=70)
    class LongestWord(BuiltinEval):
        def enabled(self, cfg) -> bool:
            return True

        def run(self, ctx: EvalContext) -> dict:
            longest = max(len(w) for ds in ctx.docs.values() for d in ds
                          for w in ctx.tok.decode([int(t) for t in d.tokens]).split())
            ctx.say(f"longest word: {longest} characters")
            return {"longest_word": ctx.write("longest_word.json", {**ctx.header, "longest": longest})}

``run_eval`` runs every enabled evaluation in ``order`` and returns the union of what they wrote.
The context loads the model and the held-out documents on first use and keeps them, so the
evaluations share one copy and an audit that needs no model never loads one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pretrain.eval.config import EvalConfig
from pretrain.registry import Registry

EVALS: Registry[type[BuiltinEval]] = Registry("built-in eval", "pretrain.eval.builtin")
E = TypeVar("E", bound="type[BuiltinEval]")


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON through a temporary file, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(data, indent=2, default=float), encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class EvalContext:
    """Everything one evaluation of a checkpoint may use. ``header`` (checkpoint, step, tokens, and
    seq_len in a full evaluation) opens every result file; ``say`` takes one-line progress messages."""

    cfg: EvalConfig
    ckpt: Path
    tokens: Path
    out: Path
    tok: Any
    device: str
    header: dict[str, Any]
    say: Callable[[str], None]
    seq_len: int = 0
    load_model: Callable[[], Any] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> Any:
        """The checkpoint's model in eval mode, loaded on first use."""
        if "model" not in self._cache:
            if self.load_model is None:
                raise ValueError(f"{self.ckpt}: this evaluation needs the model, and none can be loaded")
            self._cache["model"] = self.load_model()
        return self._cache["model"]

    @property
    def docs(self) -> dict[str, list]:
        """The held-out documents per domain (``val`` split, within the config's caps), read once."""
        if "docs" not in self._cache:
            from pretrain.eval.heldout import load_split_docs

            self._cache["docs"] = load_split_docs(self.tokens, "val", self.cfg.max_docs_per_domain,
                                                  self.cfg.max_tokens_per_domain)
        return self._cache["docs"]

    def preload(self, **values: Any) -> None:
        """Hand over what the caller already has (``model=``, ``docs=``), so it is not loaded again."""
        self._cache.update(values)

    def write(self, name: str, data: Any) -> Path:
        return write_json(self.out / name, data)


class BuiltinEval:
    """One built-in evaluation: on when :meth:`enabled` says so for the config; :meth:`run` writes its
    files under ``ctx.out`` and returns {result name: path written}."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 100

    def enabled(self, cfg: EvalConfig) -> bool:
        raise NotImplementedError

    def run(self, ctx: EvalContext) -> dict[str, Path]:
        raise NotImplementedError


def register_eval(name: str, order: int = 100) -> Callable[[E], E]:
    """Class decorator: register a :class:`BuiltinEval` under ``name``, run in ascending ``order``."""
    def wrap(cls: E) -> E:
        cls.name, cls.order = name, order
        return EVALS.add(name, cls)
    return wrap


def builtin_evals() -> list[BuiltinEval]:
    """One instance of every registered evaluation, in running order."""
    return [cls() for cls in sorted(EVALS.all().values(), key=lambda c: (c.order, c.name))]


def get_eval(name: str) -> BuiltinEval:
    return EVALS.get(name)()
