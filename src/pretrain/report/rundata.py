"""Everything the report reads from a run directory, loaded once and tolerantly.

Every artifact is optional: a run stopped after curation has no metrics, a run without evaluation has
no ``eval/``. A missing file gives ``None``; a present but unreadable one gives ``None`` plus a line in
``warnings`` naming the file, so the report shows what it could not use instead of breaking.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.data.record import open_text
from pretrain.report.metrics import Metrics, read_metrics
from pretrain.rundir import RunDir

# eval/*.json files with a dedicated section; the others are shown as generic audit tables.
KNOWN_EVAL_FILES = ("heldout.json", "samples.json", "needle.json")


@dataclass
class RunData:
    root: Path
    name: str
    config: dict = field(default_factory=dict)
    config_text: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    curated: dict | None = None
    removed_samples: list[dict] = field(default_factory=list)
    quarantine_samples: list[dict] = field(default_factory=list)
    tokenizer_stats: dict | None = None
    token_stats: dict | None = None
    heldout: dict | None = None
    samples: Any = None
    needle: dict | None = None
    needle_png: Path | None = None
    audits: dict[str, Any] = field(default_factory=dict)
    """Other eval/*.json files by stem (contamination, memorization, lm-eval ...)."""
    eval_images: list[Path] = field(default_factory=list)
    scaling: dict[str, Any] = field(default_factory=dict)
    scaling_images: list[Path] = field(default_factory=list)
    checkpoint_meta: dict | None = None
    model_config: dict | None = None
    timings: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def cfg(self, dotted: str, default: Any = None) -> Any:
        """A config value by dotted name (``train.lr``), or ``default``."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def read_json(path: Path, warnings: list[str]) -> Any:
    """Parsed JSON of ``path``; None (and a warning naming the file) when unreadable; None when absent."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        warnings.append(f"{path}: not valid JSON ({exc}); section skipped")
        return None


def read_samples(directory: Path, limit: int, warnings: list[str], per_file_lines: int = 200) -> list[dict]:
    """Up to ``limit`` records from the first lines of each ``*.jsonl*`` file in ``directory``.

    Only the head of each file is read, so a removed/ directory of gigabytes costs milliseconds.
    """
    if not directory.is_dir():
        return []
    out: list[dict] = []
    for path in sorted(p for p in directory.rglob("*.jsonl*") if p.is_file()):
        try:
            with open_text(path, "rt") as f:
                for lineno, line in enumerate(f, 1):
                    if lineno > per_file_lines or len(out) >= limit:
                        break
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        warnings.append(f"{path}:{lineno}: not JSON; sample skipped")
                        continue
                    if isinstance(rec, dict):
                        out.append(rec)
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # zstd errors are subclasses
            warnings.append(f"{path}: unreadable ({exc}); samples skipped")
        if len(out) >= limit:
            break
    return out


def _latest_checkpoint_meta(ckpt_dir: Path, warnings: list[str]) -> tuple[dict | None, dict | None]:
    """meta.json and model_config.json of checkpoints/final, else of the highest step directory."""
    if not ckpt_dir.is_dir():
        return None, None
    final = ckpt_dir / "final"
    candidates = [final] if final.is_dir() else sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir())[-1:]
    for c in candidates:
        return read_json(c / "meta.json", warnings), read_json(c / "model_config.json", warnings)
    return None, None


def load_run(run_dir: str | Path, sample_limit: int = 40) -> RunData:
    """Load every artifact of a run directory the report knows about (all optional)."""
    rd = RunDir(Path(run_dir))
    if not rd.root.is_dir():
        raise FileNotFoundError(f"run directory {rd.root} does not exist")
    w: list[str] = []
    data = RunData(root=rd.root, name=rd.root.resolve().name, warnings=w)

    if rd.config.is_file():
        data.config_text = rd.config.read_text(encoding="utf-8", errors="replace")
        try:
            data.config = tomllib.loads(data.config_text)
        except tomllib.TOMLDecodeError as exc:
            w.append(f"{rd.config}: not valid TOML ({exc}); config shown as text only")
    if isinstance(data.config.get("name"), str) and data.config["name"]:
        data.name = data.config["name"]

    data.metrics = read_metrics(rd.metrics)
    w.extend(data.metrics.bad_lines[:20])
    if len(data.metrics.bad_lines) > 20:
        w.append(f"... and {len(data.metrics.bad_lines) - 20} more unreadable lines in {rd.metrics}")

    data.curated = read_json(rd.curated / "stats.json", w)
    data.removed_samples = read_samples(rd.curated / "removed", sample_limit, w)
    data.quarantine_samples = read_samples(rd.curated / "quarantine", sample_limit // 4, w)
    data.tokenizer_stats = read_json(rd.tokenizer / "stats.json", w)
    data.token_stats = read_json(rd.tokens / "stats.json", w)

    data.heldout = read_json(rd.eval / "heldout.json", w)
    data.samples = read_json(rd.eval / "samples.json", w)
    data.needle = read_json(rd.eval / "needle.json", w)
    if (rd.eval / "needle.png").is_file():
        data.needle_png = rd.eval / "needle.png"
    if rd.eval.is_dir():
        for p in sorted(rd.eval.glob("*.json")):
            if p.name not in KNOWN_EVAL_FILES:
                value = read_json(p, w)
                if value is not None:
                    data.audits[p.stem] = value
        data.eval_images = sorted(p for p in rd.eval.glob("*.png") if p.name != "needle.png")

    scaling_dir = rd.root / "scaling"
    if scaling_dir.is_dir():
        for p in sorted(scaling_dir.glob("*.json")):
            value = read_json(p, w)
            if value is not None:
                data.scaling[p.stem] = value
        data.scaling_images = sorted(scaling_dir.glob("*.png"))

    data.checkpoint_meta, data.model_config = _latest_checkpoint_meta(rd.checkpoints, w)
    data.timings = read_json(rd.root / "quickstart_timings.json", w)
    return data
