"""Curation pipeline configuration: which steps run, in which order, with which thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.configlib import check
from pretrain.data.curate.registry import build_step, import_step_modules

DEFAULT_DOMAIN_GLOBS: dict[str, str] = {
    **{f"*.{ext}": "code" for ext in ("py", "pyi", "rs", "c", "h", "cc", "cpp", "hpp", "cxx", "go", "java", "js",
                                      "mjs", "ts", "tsx", "jsx", "rb", "php", "cs", "swift", "kt", "scala", "sh",
                                      "bash", "lua", "pl", "r", "jl", "hs", "ml", "sql", "toml", "yaml", "yml",
                                      "ipynb", "cmake", "mk", "zig")},
    "Makefile": "code",
    "Dockerfile": "code",
    "*.html": "web",
    "*.htm": "web",
    "*.xhtml": "web",
    "*.md": "prose",
    "*.markdown": "prose",
    "*.rst": "prose",
    "*.txt": "prose",
    "*.tex": "prose",
}


@dataclass
class CurateConfig:
    steps: list[dict[str, Any]] = field(default_factory=list)
    """Pipeline steps in order, each a table with `type` and that step's options ([] = the default pipeline)."""
    workers: int = 0
    """Worker processes (0 = all cores)."""
    keep_removed: bool = True
    """Write every dropped document with its reason under removed/."""
    shard_docs: int = 10_000
    """Records per input shard of a JSONL/Parquet file (the unit of parallel work and of resumption)."""
    shard_bytes: int = 4_000_000
    """A JSONL file is also cut every this many bytes (uncompressed), so big documents still spread over workers."""
    files_per_shard: int = 500
    """Loose files (text, code, HTML) grouped per shard."""
    text_field: str = "text"
    """Field (JSONL) or column (Parquet) that holds the document text."""
    domain_globs: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DOMAIN_GLOBS))
    """File-name glob -> domain for files read from directories (first match wins; JSONL records that
    carry a `domain` keep it)."""
    default_domain: str = "prose"
    """Domain of loose files that match no glob."""
    max_record_bytes: int = 8_000_000
    """Records (JSONL lines, files, WARC payloads) larger than this go to quarantine instead of memory:
    the steps hold a few copies of a document, so peak memory grows with the largest one (see
    docs/curation.md; 8 MB is a 2,000-page book, and Common Crawl cuts captures at 1 MiB)."""
    samples_per_reason: int = 3
    """Removed documents kept as samples per reason in stats.json (for inspection)."""
    sample_chars: int = 400
    """Characters of each sample's text kept in stats.json."""
    output_format: str = "jsonl.zst"
    """Format of the kept documents under data/: 'jsonl.zst' or 'parquet' (removed/ and quarantine/ are
    always JSONL.zst)."""
    step_modules: list[str] = field(default_factory=list)
    """Python modules imported before the pipeline is built, for steps defined outside pretrain (each
    registers its step with @register; they must be importable on every worker and Ray node)."""
    keep_work: bool = False
    """Keep the scratch directory work/ (dedup indexes, intermediate shards) after a successful run."""
    blocklist: str = ""
    """Domain blocklist file (UT1 format, one domain per line, subdomains included): adds the
    `domain_blocklist` step at the front of the pipeline ('' = none)."""

    def validate(self) -> None:
        check(self.workers >= 0, "workers", f"must be >= 0 (got {self.workers})")
        check(self.shard_docs >= 1, "shard_docs", f"must be >= 1 (got {self.shard_docs})")
        check(self.shard_bytes >= 1, "shard_bytes", f"must be >= 1 (got {self.shard_bytes})")
        check(self.files_per_shard >= 1, "files_per_shard", f"must be >= 1 (got {self.files_per_shard})")
        check(bool(self.text_field), "text_field", "must not be empty")
        check(self.max_record_bytes >= 1024, "max_record_bytes", f"must be >= 1024 (got {self.max_record_bytes})")
        check(self.output_format in ("jsonl.zst", "parquet"), "output_format",
              f"must be 'jsonl.zst' or 'parquet' (got {self.output_format!r})")
        check(self.samples_per_reason >= 0, "samples_per_reason", "must be >= 0")
        check(self.sample_chars >= 0, "sample_chars", f"must be >= 0 (got {self.sample_chars})")
        check(not self.blocklist or "://" in self.blocklist or Path(self.blocklist).is_file(), "blocklist",
              f"blocklist file not found: {self.blocklist}")
        import_step_modules(self.step_modules)
        for i, spec in enumerate(self.steps):  # types and options checked here, naming e.g. steps[2].min_words
            build_step(spec, f"steps[{i}]")
