"""Evaluation configuration: held-out loss and bits per byte, samples, needle-in-a-haystack, audits."""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.configlib import check


@dataclass
class NeedleConfig:
    enabled: bool = False
    """Run needle-in-a-haystack in `pretrain eval` (also turned on by --needle)."""
    lengths: list[int] = field(default_factory=list)
    """Haystack lengths in tokens, needle and question included ([] = 1/4, 1/2 and 1 x the model context, those long enough)."""
    depths: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    """Relative needle positions in the haystack, 0 = start, 1 = just before the question."""
    trials: int = 4
    """Random key/value needles per (length, depth) cell."""
    value_digits: int = 6
    """Digits of the random value the model must retrieve."""
    pass_threshold: float = 0.9
    """Mean greedy exact-match accuracy over all cells needed to pass (the long-context stage gate)."""
    seed: int = 0
    """Seed for keys, values and haystack offsets."""

    def validate(self) -> None:
        check(all(n > 0 for n in self.lengths), "lengths", "every length must be > 0")
        check(bool(self.depths) and all(0.0 <= d <= 1.0 for d in self.depths), "depths",
              f"must be a non-empty list of values in [0, 1] (got {self.depths})")
        check(self.trials > 0, "trials", "must be > 0")
        check(1 <= self.value_digits <= 32, "value_digits", "must be in 1..32")
        check(0.0 <= self.pass_threshold <= 1.0, "pass_threshold", "must be in [0, 1]")


@dataclass
class ContaminationConfig:
    enabled: bool = False
    """Run the contamination audit in `pretrain eval` (also turned on by --contamination)."""
    ngram: int = 13
    """n of the token n-grams compared (GPT-3 used 13-grams of words; 8-13 is usual)."""
    against: list[str] = field(default_factory=list)
    """Extra evaluation sets to audit: JSONL files of records with a `text` field (name = file stem)."""
    include_heldout: bool = True
    """Also audit the held-out (val) split against train: leakage across the split."""
    include_tasks: bool = True
    """Also audit the bundled offline lm-eval task data."""
    dirty_fraction: float = 0.0
    """An eval document counts as contaminated when more than this fraction of its n-grams occur in training."""
    max_hits: int = 20
    """Training documents with overlap to list per benchmark (shard, document index, source)."""

    def validate(self) -> None:
        check(self.ngram >= 2, "ngram", "must be >= 2")
        check(self.max_hits >= 0, "max_hits", f"must be >= 0 (got {self.max_hits})")
        check(0.0 <= self.dirty_fraction < 1.0, "dirty_fraction", "must be in [0, 1)")


@dataclass
class MemorizationConfig:
    enabled: bool = False
    """Run the memorization audit in `pretrain eval` (also turned on by --memorization)."""
    docs_per_domain: int = 32
    """Training documents sampled per domain."""
    prefix_tokens: int = 32
    """Tokens of the document given as the prompt."""
    continuation_tokens: int = 32
    """Tokens the greedy continuation must reproduce exactly (Carlini et al. use 32-64)."""
    seed: int = 0
    """Seed of the document and offset sampling."""

    def validate(self) -> None:
        check(self.docs_per_domain > 0, "docs_per_domain", "must be > 0")
        check(self.prefix_tokens > 0, "prefix_tokens", "must be > 0")
        check(self.continuation_tokens > 0, "continuation_tokens", "must be > 0")


@dataclass
class EvalConfig:
    batch_size: int = 8
    """Sequences per forward pass during evaluation."""
    seq_len: int = 0
    """Evaluation window length (0 = the training sequence length)."""
    max_docs_per_domain: int = 200
    """Cap on held-out documents per domain (0 = all), chosen evenly spaced through the split."""
    max_tokens_per_domain: int = 100_000
    """Cap on held-out tokens per domain (0 = no cap), to keep in-loop evaluation fast."""
    interval: int = 0
    """Evaluate every this many training steps (0 = only at the end of each stage)."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts for generated samples ([] = a fixed prompt per domain, the start of its first held-out doc)."""
    sample_tokens: int = 64
    """New tokens per generated sample."""
    sample_temperature: float = 0.8
    """Temperature of the sampled (non-greedy) samples."""
    sample_top_k: int = 50
    """Top-k of the sampled samples (0 = no cutoff)."""
    seed: int = 0
    """Seed for sampled generations."""
    unigram_baseline: bool = True
    """Compute the add-one unigram bits-per-byte baseline from the training shards."""
    needle: NeedleConfig = field(default_factory=NeedleConfig)
    """Needle-in-a-haystack long-context test."""
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)
    """n-gram contamination audit of evaluation sets against the training shards."""
    memorization: MemorizationConfig = field(default_factory=MemorizationConfig)
    """Verbatim memorization audit of training documents."""
    lm_eval_tasks: list[str] = field(default_factory=list)
    """lm-evaluation-harness tasks to run in `pretrain eval` (needs the `eval` extra; [] = none)."""
    tasks: list[str] = field(default_factory=list)
    """lm-eval multiple-choice tasks scored during training at `interval` and at stage ends (acc,
    acc_norm into the eval rows as task/<name>/...): bundled ones (pretrain_offline_mc) or from task_paths."""
    task_limit: int = 0
    """Documents per task scored during training (0 = all): bounds the cost of each evaluation."""
    task_paths: list[str] = field(default_factory=list)
    """Folders of lm-eval task YAML files (local copies of hellaswag, arc_easy ...) for `tasks`."""

    def validate(self) -> None:
        check(self.batch_size > 0, "batch_size", "must be > 0")
        check(self.seq_len >= 0, "seq_len", "must be >= 0")
        check(self.max_docs_per_domain >= 0, "max_docs_per_domain", "must be >= 0")
        check(self.max_tokens_per_domain >= 0, "max_tokens_per_domain", "must be >= 0")
        check(self.interval >= 0, "interval", "must be >= 0")
        check(self.task_limit >= 0, "task_limit", "must be >= 0")
        check(self.sample_tokens >= 0, "sample_tokens", "must be >= 0")
        check(self.sample_temperature > 0, "sample_temperature", "must be > 0")
        check(self.sample_top_k >= 0, "sample_top_k", "must be >= 0")
