"""The step registry: base classes of pipeline steps and the decorator that registers them by name.

A step is one file under ``pretrain/data/curate/steps/``. Every module there is imported when the
registry is first asked for a step, so adding a filter needs no edit anywhere else::

    # pretrain/data/curate/steps/shouting.py
    from dataclasses import dataclass

    from pretrain.data.curate.registry import Step, Verdict, register

    @dataclass
    class ShoutingOptions:
        max_upper_fraction: float = 0.5
        \"\"\"Documents with more upper-case letters than this fraction are removed.\"\"\"

    @register("shouting")
    class Shouting(Step):
        Options = ShoutingOptions

        def __call__(self, doc) -> Verdict | None:
            letters = [c for c in doc.text if c.isalpha()]
            if letters and sum(c.isupper() for c in letters) / len(letters) > self.o.max_upper_fraction:
                return "shouting", "too many capitals"
            return None

and ``{type = "shouting", max_upper_fraction = 0.4}`` then works in a config's ``data.curate.steps``.
A step defined in your own package works the same way once ``data.curate.step_modules`` names its
module (it must be importable on every worker, e.g. every Ray node).

Two kinds of step:

- :class:`Step` (local): sees each document once and returns ``None`` (keep; it may have rewritten
  ``doc.text`` or added to ``doc.meta``) or a :data:`Verdict` ``(reason, detail)`` to remove it.
- :class:`GlobalStep`: needs the whole corpus. It *collects* per shard (writing files under
  ``self.work``), then runs its *stages*: ``stages()`` returns how many independent tasks each stage
  has (e.g. one per hash partition), and ``run_stage(stage, part)`` does one of them; the executor runs
  the tasks of a stage in parallel (processes or Ray tasks) and a finished task is never redone. Then it
  *applies* its decisions per shard. A step whose number of stages is only known as it runs (rounds
  until nothing changes) adds them one at a time with ``more_stages(results)``. A step that only
  overrides ``resolve()`` gets one stage of one task.

Every step has a ``domains`` / ``skip_domains`` gate: a document outside it passes untouched. Step
modules import only this module (and their own helpers), never the runner or the config, so there
are no import cycles.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pretrain.configlib import ConfigError, from_dict
from pretrain.data.record import Document

Verdict = tuple[str, str]  # (reason key, human-readable detail)

_REGISTRY: dict[str, type[Step]] = {}
_LOADED = False
S = TypeVar("S", bound="type[Step]")


@dataclass
class NoOptions:
    pass


class Step:
    """Base class: a typed options dataclass, a domain gate and per-shard counters."""

    type: ClassVar[str] = ""
    kind: ClassVar[str] = "local"
    Options: ClassVar[type] = NoOptions

    def __init__(self, label: str, options: Any, domains: list[str], skip_domains: list[str]):
        self.label = label
        self.o = options
        self.domains = set(domains)
        self.skip_domains = set(skip_domains)
        self.counters: dict[str, int] = {}
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError (field relative to the step) for inconsistent options."""

    def setup(self) -> None:
        """Load heavy resources once per worker process (models, eval sets)."""

    def wants(self, doc: Document) -> bool:
        return (not self.domains or doc.domain in self.domains) and doc.domain not in self.skip_domains

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def __call__(self, doc: Document) -> Verdict | None:  # pragma: no cover - abstract
        raise NotImplementedError


class GlobalStep(Step):
    """A step that needs the whole corpus: collect per shard -> stages of parallel tasks -> apply per shard.

    The runner sets ``self.work`` (this step's scratch directory, shared by all workers and tasks) and
    ``self.n_shards`` before calling any hook. Collected items are keyed by (shard, position of the
    document in that shard's stream at this point of the pipeline), which is the same whatever the
    number of workers. Every file a hook writes must be written atomically (see ``dedup.store.save``),
    because a task may be killed and retried.
    """

    kind = "global"
    work: Path
    n_shards: int = 0
    previous: dict[str, Any]  # set by the runner before each run_stage: the stage before's merged results
    apply_files: ClassVar[tuple[str, ...]] = ("*",)
    """Name patterns of the work files ``begin_apply`` / ``apply`` read: a task applying this step on a
    node without the output's file system (``--out`` an fsspec URL) downloads only these."""

    def begin_collect(self, shard: int) -> None: ...
    def collect(self, doc: Document, idx: int) -> None: ...
    def end_collect(self) -> None: ...

    def stages(self) -> list[int]:
        """Number of independent tasks in each stage, in order (default: one stage of one task)."""
        return [1]

    def more_stages(self, results: list[dict[str, Any]]) -> int:
        """Asked by the driver once the stages of ``stages()`` and any added before are done, with the
        merged results of each stage so far (``results[k]``: stage k's tasks' dicts, summed): the number
        of tasks of one more stage (stage ``len(results)``), or 0 when there are no more. For work whose
        number of rounds is only known as it goes (e.g. iterated until nothing changes). It must decide
        from ``results`` alone (the driver may not see the work files); a resumed run replays the same
        decisions from the finished stages' recorded results."""
        return 0

    def run_stage(self, stage: int, part: int) -> dict[str, Any]:
        """Run task ``part`` of ``stage``; the dicts returned by all tasks are summed into stats.json.
        ``self.previous`` holds the merged results of the stage before (empty in stage 0)."""
        return self.resolve(self.n_shards)

    def resolve(self, n_shards: int) -> dict[str, Any]:
        """Single-task form of the stages, for steps whose decision is small enough for one process."""
        return {}

    def begin_apply(self, shard: int) -> None: ...
    def apply(self, doc: Document, idx: int) -> Verdict | None:
        return None


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a :class:`Step` subclass available as ``{type = name}`` in configs."""

    def deco(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, Step)):
            raise TypeError(f"@register({name!r}) must decorate a Step subclass (got {cls!r})")
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"step type {name!r} is registered twice: {old.__module__} and {cls.__module__}")
        cls.type = name
        _REGISTRY[name] = cls
        return cls

    return deco


def step_classes() -> dict[str, type[Step]]:
    """Every registered step type (importing each module of ``pretrain.data.curate.steps`` once)."""
    global _LOADED
    if not _LOADED:
        from pretrain.data.curate import steps as pkg

        for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
            if not mod.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{mod}")
        _LOADED = True
    return dict(sorted(_REGISTRY.items()))


def import_step_modules(names: list[str], field: str = "step_modules") -> None:
    """Import modules that register steps defined outside pretrain (a user's own package)."""
    for i, name in enumerate(names):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure is a config error naming the module
            raise ConfigError(f"{field}[{i}]", f"cannot import step module {name!r}: {exc}") from None


def build_step(spec: dict[str, Any], path: str) -> Step:
    """One step from its config table; errors name the field, e.g. ``steps[3].min_words``."""
    if not isinstance(spec, dict):
        raise ConfigError(path, f"expected a table with a 'type' (got {spec!r})")
    spec = dict(spec)
    kind = spec.pop("type", None)
    classes = step_classes()
    if kind not in classes:
        raise ConfigError(f"{path}.type", f"unknown step type {kind!r} (choose from {', '.join(classes)})")
    label = str(spec.pop("name", kind))
    domains = spec.pop("domains", [])
    skip = spec.pop("skip_domains", [])
    for key, val in (("domains", domains), ("skip_domains", skip)):
        if not (isinstance(val, list) and all(isinstance(v, str) for v in val)):
            raise ConfigError(f"{path}.{key}", f"expected a list of domain names (got {val!r})")
    cls = classes[kind]
    opts = from_dict(cls.Options, spec, path)
    try:
        return cls(label, opts, domains, skip)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.field}", exc.why) from None


def keep_fraction_hash(doc_id: str, salt: str) -> float:
    """A number in [0, 1) fixed by the document id: deterministic, worker-independent sampling."""
    h = hashlib.blake2b(f"{salt}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


__all__ = ["GlobalStep", "NoOptions", "Step", "Verdict", "build_step", "import_step_modules", "keep_fraction_hash",
           "register", "step_classes"]
