"""Train a byte-level BPE tokenizer on a domain-balanced sample of the curated corpus.

Design (each choice has a published precedent):
- byte-level BPE (GPT-2): the 256 byte symbols are always in the vocabulary, so no unknown token;
- no normalizer and no prefix space, so decoding gives back the exact input text;
- digits split one by one before BPE (PaLM, Llama), which helps arithmetic and keeps numbers regular;
- special tokens take the first ids: BOS, EOS, PAD, FIM prefix/middle/suffix (Bavarian et al. 2022),
  then ``n_reserved`` reserved slots so later stages can add tokens without resizing the embedding;
- the training sample takes at most ``sample_bytes_per_domain`` bytes from each domain, a random
  (hash-ordered) subset of its documents, so a huge domain (web text, say) cannot crowd a small one
  (code) out of the merges, and the input order does not bias the sample.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from pretrain.configlib import validate
from pretrain.data.record import Document
from pretrain.data.split import doc_is_heldout, heldout_score
from pretrain.tokenizer import specials
from pretrain.tokenizer.config import TokenizerConfig
from pretrain.tokenizer.wrapper import Tokenizer, load_tokenizer


def build_untrained(cfg: TokenizerConfig) -> HFTokenizer:
    """An empty byte-level BPE pipeline (pre-tokenizer and decoder set, no merges yet)."""
    tok = HFTokenizer(models.BPE())
    steps = []
    if cfg.split_digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    return tok


def domain_balanced_sample(docs: Iterable[Document], bytes_per_domain: int, val_fraction: float = 0.0,
                           counts: dict[str, int] | None = None) -> Iterator[str]:
    """Texts of a random sample of each domain, at most ``bytes_per_domain`` UTF-8 bytes per domain.

    The sample is the documents with the smallest hash of their id (a bottom-k sample: uniform over the
    domain whatever the input order, and deterministic), kept in a bounded heap while streaming, so
    memory stays about ``bytes_per_domain`` per domain. The last document is cut at the budget on a
    character boundary. Held-out documents (``val_fraction``, by id hash) are skipped. ``counts`` (when
    given) is filled with the bytes taken per domain.
    """
    heaps: dict[str, list[tuple[float, int, str, int]]] = {}
    sizes: dict[str, int] = {}
    for n, doc in enumerate(docs):
        if doc_is_heldout(doc, val_fraction):
            continue  # held-out text stays unseen, so `tokenizer stats` measures generalisation
        nbytes = len(doc.text.encode("utf-8", "surrogatepass"))
        if not nbytes:
            continue
        heap = heaps.setdefault(doc.domain, [])
        heapq.heappush(heap, (-heldout_score(doc.id + ":tokenizer-sample"), n, doc.text, nbytes))
        sizes[doc.domain] = sizes.get(doc.domain, 0) + nbytes
        # drop the highest-hash documents while the rest still fill the budget
        while len(heap) > 1 and sizes[doc.domain] - heap[0][3] >= bytes_per_domain:
            sizes[doc.domain] -= heapq.heappop(heap)[3]
    taken: dict[str, int] = counts if counts is not None else {}
    for domain in sorted(heaps):
        used = 0
        for _, _, text, nbytes in sorted(heaps[domain], reverse=True):  # smallest hash first
            room = bytes_per_domain - used
            if room <= 0:
                break
            if nbytes > room:
                text = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", errors="ignore")
                nbytes = len(text.encode("utf-8", "surrogatepass"))
            used += nbytes
            if text:
                yield text
        taken[domain] = used


def train_tokenizer(docs: Iterable[Document], cfg: TokenizerConfig, out_dir: str | Path,
                    val_fraction: float = 0.0, inputs: list[str | Path] | None = None) -> Tokenizer:
    """Train on a domain-balanced sample of ``docs`` and save ``out_dir/tokenizer.json``.

    ``val_fraction``: documents held out by id hash (the same rule as `pretrain tokenize`) are left out
    of the sample. Returns the loaded wrapper (its ``hash`` is that of the saved file). ``inputs``: the
    files or directories ``docs`` were read from, for the lineage manifest beside tokenizer.json.
    """
    validate(cfg, "tokenizer")
    tok = build_untrained(cfg)
    special = [AddedToken(t, special=True, normalized=False) for t in specials.special_tokens(cfg.n_reserved)]
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=cfg.max_token_length or None,
        show_progress=False,
    )
    counts: dict[str, int] = {}
    tok.train_from_iterator(domain_balanced_sample(docs, cfg.sample_bytes_per_domain, val_fraction, counts), trainer)
    if not counts:
        raise ValueError("tokenizer training got no documents (is the input empty or all held out?)")
    missing = [c for c in pre_tokenizers.ByteLevel.alphabet() if tok.token_to_id(c) is None]
    if missing:  # cannot happen with initial_alphabet, but a missing byte would break byte fallback
        raise RuntimeError(f"trained tokenizer lacks {len(missing)} byte symbols")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tokenizer.json"
    tmp = out / ".tokenizer.json.tmp"
    tmp.write_text(tok.to_str(pretty=True), encoding="utf-8")
    tmp.replace(path)
    from pretrain.configlib import to_dict
    from pretrain.lineage.manifest import write_manifest

    write_manifest(out, "tokenizer", inputs=[("records", Path(i)) for i in inputs or []], outputs=["tokenizer.json"],
                   config={**to_dict(cfg), "val_fraction": val_fraction})
    wrapped = load_tokenizer(path)
    wrapped.sample_bytes = counts  # type: ignore[attr-defined]  # informational, for the CLI summary
    return wrapped
