"""Pipeline steps: small objects that look at one document at a time.

A *local* step sees each document once and returns ``None`` (keep; it may have rewritten ``doc.text`` or
added to ``doc.meta``) or a :data:`Verdict` ``(reason, detail)`` to remove it. A *global* step (dedup,
corpus statistics) needs the whole corpus first: it collects per shard, resolves once over everything
collected, then applies its decisions per shard (see :mod:`pretrain.data.curate.runner`).

Every step has a ``domains`` / ``skip_domains`` gate: a document outside it passes untouched, which is
how prose rules stay off code and web rules off curated text. Steps are declared in the config as
tables ``{type = "...", name = "...", domains = [...], skip_domains = [...], <options>}``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pretrain.configlib import ConfigError, check, from_dict
from pretrain.data.curate import c4, code_rules, fineweb, gopher, pii, wordlist
from pretrain.data.curate.decontam import DecontamOptions
from pretrain.data.curate.text import normalize_code, normalize_prose
from pretrain.data.record import Document

Verdict = tuple[str, str]  # (reason key, human-readable detail)


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


# ---------------------------------------------------------------------------------------------- mappers


@dataclass
class ExtractOptions:
    html_domains: list[str] = field(default_factory=lambda: ["web"])
    """Besides files read as HTML (meta.format = 'html'), documents of these domains that look like HTML
    are extracted too (e.g. JSONL of crawled pages)."""


class Extract(Step):
    """HTML -> main text (trafilatura); a page with no text left is removed as 'no_text'."""

    type = "extract"
    Options = ExtractOptions

    def __call__(self, doc: Document) -> Verdict | None:
        from pretrain.data.curate.extract import html_to_text, looks_like_html

        is_html = doc.meta.get("format") == "html" or (doc.domain in self.o.html_domains and looks_like_html(doc.text))
        if not is_html:
            return None
        text = html_to_text(doc.text)
        doc.meta["format"] = "text"
        doc.meta["extracted_from"] = "html"
        self.count("extracted")
        if not text.strip():
            return "no_text", "no main text found in the HTML"
        doc.text = text
        return None


@dataclass
class NormalizeOptions:
    code_domains: list[str] = field(default_factory=lambda: ["code"])
    """Domains normalized as code (indentation kept)."""


class Normalize(Step):
    """Unicode NFC and whitespace normalization (prose: collapse spaces; code: keep indentation)."""

    type = "normalize"
    Options = NormalizeOptions

    def __call__(self, doc: Document) -> Verdict | None:
        text = normalize_code(doc.text) if doc.domain in self.o.code_domains else normalize_prose(doc.text)
        if text != doc.text:
            doc.text = text
        if not text.strip():
            return "empty", "nothing left after whitespace normalization"
        return None


@dataclass
class LangIdOptions:
    languages: list[str] = field(default_factory=list)
    """Allowed ISO 639-1 codes ([] = keep every language, only label)."""
    min_score: float = 0.0
    """Smallest language probability to keep a document (0 = keep all)."""
    max_chars: int = 2000
    """Characters of the document given to the classifier (its cost grows with them; 2000 is plenty)."""


class LangId(Step):
    """Label `lang` and `meta.lang_score` with py3langid; filter by allowed languages and score."""

    type = "langid"
    Options = LangIdOptions

    def validate(self) -> None:
        check(0.0 <= self.o.min_score <= 1.0, "min_score", f"must be in [0, 1] (got {self.o.min_score})")

    def __call__(self, doc: Document) -> Verdict | None:
        from pretrain.data.curate.langid import detect_language

        lang, score = detect_language(doc.text, self.o.max_chars)
        doc.lang = lang
        doc.meta["lang_score"] = round(score, 4)
        self.count(f"lang:{lang}")
        if self.o.languages and lang not in self.o.languages:
            return "language", f"language {lang} not in {self.o.languages}"
        if score < self.o.min_score:
            return "low_score", f"language score {score:.3f} < {self.o.min_score}"
        return None


class PII(Step):
    """Redact e-mails, phone numbers, IP addresses and Luhn-valid card numbers with placeholders."""

    type = "pii"
    Options = pii.PIIOptions

    def validate(self) -> None:
        bad = [t for t in self.o.types if t not in pii.DEFAULT_PLACEHOLDERS]
        check(not bad, "types", f"unknown PII type(s) {bad}; choose from {list(pii.DEFAULT_PLACEHOLDERS)}")

    def __call__(self, doc: Document) -> Verdict | None:
        text, counts = pii.redact_pii(doc.text, self.o)
        if counts:
            doc.text = text
            doc.meta["pii"] = {**doc.meta.get("pii", {}), **counts}
            for k, v in counts.items():
                self.count(k, v)
        return None


# ---------------------------------------------------------------------------------------------- filters


class GopherQuality(Step):
    type = "gopher_quality"
    Options = gopher.GopherQualityOptions

    def validate(self) -> None:
        check(self.o.min_words <= self.o.max_words, "min_words", "must be <= max_words")

    def __call__(self, doc: Document) -> Verdict | None:
        return gopher.gopher_quality(doc.text, self.o, doc.lang)


class GopherRepetition(Step):
    type = "gopher_repetition"
    Options = gopher.GopherRepetitionOptions

    def validate(self) -> None:
        for name in ("max_top_ngram_char_fraction", "max_dup_ngram_char_fraction"):
            for k in getattr(self.o, name):
                check(str(k).isdigit() and int(k) > 0, name, f"keys must be n-gram sizes like '5' (got {k!r})")

    def __call__(self, doc: Document) -> Verdict | None:
        return gopher.gopher_repetition(doc.text, self.o)


class C4(Step):
    type = "c4"
    Options = c4.C4Options

    def __call__(self, doc: Document) -> Verdict | None:
        text, dropped, verdict = c4.c4_clean(doc.text, self.o)
        if verdict:
            return verdict
        if dropped:
            self.count("lines_dropped", dropped)
            doc.text = text
        return None


class FineWeb(Step):
    type = "fineweb"
    Options = fineweb.FineWebOptions

    def __call__(self, doc: Document) -> Verdict | None:
        return fineweb.fineweb_quality(doc.text, self.o)


class CodeQuality(Step):
    type = "code_quality"
    Options = code_rules.CodeOptions

    def __call__(self, doc: Document) -> Verdict | None:
        return code_rules.code_quality(doc.text, self.o)


class WordList(Step):
    type = "wordlist"
    Options = wordlist.WordListOptions

    def validate(self) -> None:
        check(bool(self.o.words or self.o.words_file), "words", "give `words` or `words_file`")

    def setup(self) -> None:
        self.pattern = wordlist.compile_wordlist(self.o)

    def __call__(self, doc: Document) -> Verdict | None:
        count, verdict = wordlist.wordlist_check(doc.text, self.pattern, self.o)
        if count:
            doc.meta["wordlist_count"] = count
        return verdict


@dataclass
class LengthOptions:
    min_chars: int = 1
    """Fewest characters a document may have."""
    max_chars: int = 0
    """Most characters a document may have (0 = no limit)."""


class Length(Step):
    type = "length"
    Options = LengthOptions

    def __call__(self, doc: Document) -> Verdict | None:
        n = len(doc.text)
        if n < self.o.min_chars:
            return "too_short", f"{n} characters < {self.o.min_chars}"
        if self.o.max_chars and n > self.o.max_chars:
            return "too_long", f"{n} characters > {self.o.max_chars}"
        return None


class Decontaminate(Step):
    type = "decontaminate"
    Options = DecontamOptions

    def validate(self) -> None:
        check(bool(self.o.eval_sets), "eval_sets", "list at least one evaluation JSONL file")
        check(self.o.action in ("remove", "flag"), "action", f"must be 'remove' or 'flag' (got {self.o.action!r})")
        check(self.o.ngram >= 1, "ngram", "must be >= 1")
        for p in self.o.eval_sets:
            check(Path(p).is_file(), "eval_sets", f"evaluation set not found: {p}")

    def setup(self) -> None:
        from pretrain.data.curate.decontam import EvalIndex

        self.index = EvalIndex(self.o)

    def __call__(self, doc: Document) -> Verdict | None:
        hits = {k: v for k, v in self.index.matches(doc.text).items() if v >= self.o.min_matches}
        if not hits:
            return None
        for name in hits:
            self.count(f"matched:{name}")
        doc.meta["contamination"] = hits
        if self.o.action == "remove":
            worst = max(sorted(hits), key=lambda k: hits[k])
            return f"contaminated:{worst}", f"shares {hits[worst]} {self.o.ngram}-grams with {worst}"
        return None


def keep_fraction_hash(doc_id: str, salt: str) -> float:
    """A number in [0, 1) fixed by the document id: deterministic, worker-independent sampling."""
    h = hashlib.blake2b(f"{salt}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


class GlobalStep(Step):
    """A step that needs the whole corpus: collect per shard -> resolve once -> apply per shard.

    The runner sets ``self.work`` (this step's scratch directory, shared by all workers) before calling
    the hooks. Collected items are keyed by (shard, position of the document in that shard's stream at
    this point of the pipeline), which is the same whatever the number of workers.
    """

    kind = "global"
    work: Path

    def begin_collect(self, shard: int) -> None: ...
    def collect(self, doc: Document, idx: int) -> None: ...
    def end_collect(self) -> None: ...
    def resolve(self, n_shards: int) -> dict[str, Any]:
        """Decide once over all shards; the returned dict is stored in stats.json under the step."""
        return {}
    def begin_apply(self, shard: int) -> None: ...
    def apply(self, doc: Document, idx: int) -> Verdict | None:
        return None


# ---------------------------------------------------------------------------------------------- registry


def step_classes() -> dict[str, type[Step]]:
    from pretrain.data.curate.classifier import QualityClassifierStep, TopicStep
    from pretrain.data.curate.dedup import ExactDedup, LineDedup, MinHashDedup
    from pretrain.data.curate.domain_blocklist import DomainBlocklist
    from pretrain.data.curate.kl import KLOutlier
    from pretrain.data.curate.semantic import SemanticDedup

    classes = [Extract, Normalize, LangId, PII, GopherQuality, GopherRepetition, C4, FineWeb, CodeQuality,
               WordList, Length, Decontaminate, QualityClassifierStep, TopicStep, ExactDedup, MinHashDedup,
               LineDedup, KLOutlier, SemanticDedup, DomainBlocklist]
    return {c.type: c for c in classes}


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


def options_doc(kind: str) -> list[tuple[str, Any, str]]:
    """(field, default, doc) rows of a step type's options, for `--help`-style listings."""
    from pretrain.configlib import field_docs

    cls = step_classes()[kind].Options
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f.name, default, docs.get(f.name, "")))
    return rows
