"""The default pipeline and the building of a pipeline from config.

Default pipeline (used when ``steps`` is empty), for mixed web / prose / code input. The rule that keeps
clean curated text: **web-calibrated rules run only on the domains they were calibrated on.**

- every domain: HTML extraction (files read as HTML, or 'web' records that look like HTML), Unicode and
  whitespace normalization, PII redaction, URL dedup (records with ``meta.url``: the most recent capture
  of a page is kept), exact dedup and MinHash near-dup removal;
- everything but code: language ID (label only; `languages` / `min_score` turn it into a filter);
- ``web`` and ``prose`` (crawled or user-supplied loose text): Gopher quality and repetition;
- ``web`` only: C4 line rules, FineWeb rules and ccNet line dedup (boilerplate is a web problem; a play
  repeats "Exeunt." and its speakers' names on purpose);
- ``code``: code rules (line lengths, alphanumeric fraction, generated-file markers) instead of prose rules;
- curated domains (``docs``, ``literature``, anything else): only the universal steps above plus a
  minimum length of 20 characters. So Shakespeare's short verse lines, short docstrings and source files
  all pass, and only empty, duplicate or corrupt records are lost.
"""

from __future__ import annotations

from typing import Any

from pretrain.data.curate.config import CurateConfig
from pretrain.data.curate.registry import Step, build_step, import_step_modules

WEB = ["web"]
CRAWLED = ["web", "prose"]

DEFAULT_STEPS: list[dict[str, Any]] = [
    {"type": "extract"},
    {"type": "normalize"},
    {"type": "length", "min_chars": 20},
    {"type": "langid", "skip_domains": ["code"]},
    {"type": "gopher_quality", "domains": CRAWLED},
    {"type": "gopher_repetition", "domains": CRAWLED},
    {"type": "c4", "domains": WEB},
    {"type": "fineweb", "domains": WEB},
    {"type": "code_quality", "domains": ["code"]},
    {"type": "pii"},
    {"type": "url_dedup"},  # only records with meta.url (WARC captures); before exact dedup, so the newest wins
    {"type": "exact_dedup"},
    {"type": "minhash_dedup"},
    {"type": "line_dedup", "domains": WEB},
]


def step_specs(cfg: CurateConfig) -> list[dict[str, Any]]:
    front = [{"type": "domain_blocklist", "file": cfg.blocklist}] if cfg.blocklist else []
    return front + (cfg.steps or DEFAULT_STEPS)


def build_steps(cfg: CurateConfig) -> list[Step]:
    """Step objects in order; labels are made unique (`c4`, `c4#2`) so stats never merge two steps."""
    import_step_modules(cfg.step_modules)
    steps = [build_step(spec, f"steps[{i}]") for i, spec in enumerate(step_specs(cfg))]
    seen: dict[str, int] = {}
    for s in steps:
        seen[s.label] = seen.get(s.label, 0) + 1
        if seen[s.label] > 1:
            s.label = f"{s.label}#{seen[s.label]}"
    return steps


def segments(steps: list[Step]) -> list[tuple[Step | None, list[Step], Step | None]]:
    """Split at global steps: [(global step applied first, local steps, global step collected last)]."""
    out = []
    pre: Step | None = None
    local: list[Step] = []
    for s in steps:
        if s.kind == "global":
            out.append((pre, local, s))
            pre, local = s, []
        else:
            local.append(s)
    out.append((pre, local, None))
    return out
