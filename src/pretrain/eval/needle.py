"""Needle-in-a-haystack: can the model retrieve a fact planted anywhere in a long context?

A needle is a random key/value fact ("The magic number for wuxol is 482913.") inserted at relative
depths 0..1 into haystacks of held-out text of several lengths; the context ends with a question
("What is the magic number for wuxol? The magic number for wuxol is") and the model must continue with
the value. Each cell of the lengths x depths grid is scored by

  * greedy exact match: every value token is the model's argmax given the context (teacher forcing;
    this equals "greedy decoding reproduces the value exactly", one forward pass instead of a loop), and
  * the log-probability of the value (nats, summed over its tokens).

``passed`` (mean exact match >= threshold) is the long-context stage gate: Llama 3 advanced its context
length only once needle retrieval at the new length was solved (Dubey et al. 2024, sec. 3.4.2; the test
follows Kamradt's NIAH and RULER, Hsieh et al. 2024).
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrain.eval.scoring import score_sequences

NEEDLE = " The magic number for {key} is"
QUESTION = " What is the magic number for {key}? The magic number for {key} is"


@dataclass
class NeedleCase:
    """One trial: the token sequence fed to the model and where the needle went."""

    length: int
    depth: float
    key: str
    value: str
    tokens: list[int]
    needle_start: int
    """Index in ``tokens`` of the needle's first token."""
    needle_len: int
    haystack_len: int
    """Haystack tokens around the needle; the needle follows round(depth * haystack_len) of them."""
    answer_len: int


@dataclass
class NeedleResult:
    lengths: list[int]
    depths: list[float]
    accuracy: list[list[float]]
    """Greedy exact-match rate per [length][depth]."""
    logprob: list[list[float]]
    """Mean log-probability (nats) of the value per [length][depth]."""
    overall_accuracy: float
    pass_threshold: float
    passed: bool
    """Mean exact match >= pass_threshold: the long-context stage gate."""
    chance_accuracy: float
    """Accuracy of guessing the value uniformly at random (10^-digits)."""
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, out_dir: str | Path, name: str = "needle") -> tuple[Path, Path]:
        """Write ``<name>.json`` and the heatmap ``<name>.png``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        js = out / f"{name}.json"
        js.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        png = out / f"{name}.png"
        plot_heatmap(self, png)
        return js, png


def _haystack_stream(tokenizer: Any, haystack_texts: Sequence[str]) -> list[int]:
    texts = [t for t in haystack_texts if t and t.strip()]
    if not texts:
        raise ValueError("needle-in-a-haystack needs at least one non-empty haystack text")
    stream: list[int] = []
    for t in texts:
        stream.extend(tokenizer.encode(t + "\n\n"))
    return stream


def _cycle(stream: list[int], start: int, n: int) -> list[int]:
    reps = (start + n) // len(stream) + 1
    return (stream * reps)[start:start + n]


def build_case(tokenizer: Any, stream: list[int], length: int, depth: float, rng: random.Random,
               value_digits: int = 6) -> NeedleCase:
    """One haystack of ``length`` tokens (BOS, haystack with the needle, question, answer)."""
    key = "".join(rng.choice(string.ascii_lowercase) for _ in range(5))
    value = "".join(rng.choice(string.digits) for _ in range(value_digits))
    answer = tokenizer.encode(" " + value)
    # The needle ends with exactly the answer's tokens, so retrieval is copying, whatever the BPE merges.
    needle = tokenizer.encode(NEEDLE.format(key=key)) + answer + tokenizer.encode(".")
    question = tokenizer.encode(QUESTION.format(key=key))
    bos = [tokenizer.bos_id] if getattr(tokenizer, "bos_id", None) is not None else []
    n_hay = length - len(bos) - len(needle) - len(question) - len(answer)
    if n_hay < 1:
        raise ValueError(f"needle length {length} is too short for the needle and question "
                         f"({length - n_hay + 1} tokens needed)")
    hay = _cycle(stream, rng.randrange(len(stream)), n_hay)
    pos = int(round(depth * n_hay))
    tokens = bos + hay[:pos] + needle + hay[pos:] + question + answer
    return NeedleCase(length, depth, key, value, tokens, len(bos) + pos, len(needle), n_hay, len(answer))


def min_length(tokenizer: Any, value_digits: int = 6, min_haystack: int = 16) -> int:
    """Shortest haystack length (tokens) that fits BOS, needle, question, answer and ``min_haystack`` tokens."""
    rng = random.Random(0)
    case = build_case(tokenizer, tokenizer.encode("filler text. ") * 8, 10_000, 0.0, rng, value_digits)
    return len(case.tokens) - case.haystack_len + min_haystack


def run_needle(
    model: torch.nn.Module,
    tokenizer: Any,
    haystack_texts: Sequence[str],
    lengths: Sequence[int],
    depths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    trials: int = 4,
    pass_threshold: float = 0.9,
    seed: int = 0,
    value_digits: int = 6,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    max_context: int | None = None,
) -> NeedleResult:
    """Score the model on a lengths x depths grid of needles; see the module docstring."""
    if not lengths:
        raise ValueError("needle-in-a-haystack needs at least one haystack length")
    if max_context is not None and max(lengths) > max_context:
        raise ValueError(f"needle length {max(lengths)} exceeds the model context {max_context}")
    rng = random.Random(seed)
    stream = _haystack_stream(tokenizer, haystack_texts)
    cases = [build_case(tokenizer, stream, L, d, rng, value_digits)
             for L in lengths for d in depths for _ in range(trials)]
    scored = score_sequences(model, [c.tokens for c in cases],
                             [len(c.tokens) - c.answer_len for c in cases], batch_size, device)
    acc = np.zeros((len(lengths), len(depths)))
    lp = np.zeros((len(lengths), len(depths)))
    rows = []
    for n, (c, s) in enumerate(zip(cases, scored, strict=True)):
        i, j = divmod(n // trials, len(depths))
        exact = bool(s.greedy.all())
        acc[i, j] += exact / trials
        lp[i, j] += float(s.logprobs.sum()) / trials
        rows.append({"length": c.length, "depth": c.depth, "key": c.key, "value": c.value,
                     "needle_start": c.needle_start, "haystack_len": c.haystack_len,
                     "exact": exact, "logprob": float(s.logprobs.sum())})
    overall = float(acc.mean())
    return NeedleResult(list(map(int, lengths)), list(map(float, depths)), acc.tolist(), lp.tolist(), overall,
                        pass_threshold, overall >= pass_threshold, 10.0 ** -value_digits, rows)


def plot_heatmap(result: NeedleResult, path: str | Path) -> None:
    """Lengths (rows) x depths (columns) heatmap of the exact-match rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = np.asarray(result.accuracy)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(result.depths), 1.0 + 0.6 * len(result.lengths)))
    im = ax.imshow(acc, vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(result.depths)), [f"{d:.0%}" for d in result.depths])
    ax.set_yticks(range(len(result.lengths)), [str(n) for n in result.lengths])
    ax.set_xlabel("needle depth")
    ax.set_ylabel("context length (tokens)")
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            ax.text(j, i, f"{acc[i, j]:.2f}", ha="center", va="center", fontsize=8)
    verdict = "PASS" if result.passed else "FAIL"
    ax.set_title(f"needle retrieval: {result.overall_accuracy:.2f} exact ({verdict} at {result.pass_threshold:.2f})")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
