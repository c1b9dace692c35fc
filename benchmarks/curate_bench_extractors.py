"""The two HTML extractors page by page: speed, and agreement of resiliparse's main text with
trafilatura's (character 5-gram F1).
"""

from __future__ import annotations

import time
from collections import Counter


def _grams(text: str, n: int = 5) -> Counter:
    t = " ".join(text.split())
    return Counter(t[i: i + n] for i in range(max(0, len(t) - n + 1)))


def char_f1(candidate: str, reference: str) -> float:
    """F1 of the multisets of character 5-grams (whitespace runs collapsed) of two texts: 1.0 for the same
    text, order-sensitive within 5 characters, not fooled by two texts merely sharing letter frequencies."""
    a, b = _grams(candidate), _grams(reference)
    if not a and not b:
        return 1.0
    common = sum((a & b).values())
    if not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def bench_extractors(pages: list[tuple[str, str]]) -> None:
    from pretrain.data.curate.io.extract import html_to_text

    texts: dict[str, list[str]] = {}
    for name in ("trafilatura", "resiliparse"):
        html_to_text(pages[0][1], name)  # imports out of the timing
        t0 = time.perf_counter()
        texts[name] = [html_to_text(h, name) for _, h in pages]
        secs = time.perf_counter() - t0
        chars = sum(map(len, texts[name]))
        print(f"extractor {name:12s}: {secs:6.2f} s for {len(pages)} pages = {1000 * secs / len(pages):6.2f} ms/page, "
              f"{chars / 1e6:.2f} M characters of text")
    f1 = sorted(char_f1(r, t) for r, t in zip(texts["resiliparse"], texts["trafilatura"], strict=True))
    print(f"resiliparse vs trafilatura, character 5-gram F1 per page: mean {sum(f1) / len(f1):.3f}, "
          f"median {f1[len(f1) // 2]:.3f}, 10th percentile {f1[len(f1) // 10]:.3f}, pages >= 0.9: "
          f"{sum(x >= 0.9 for x in f1) / len(f1):.0%}")
