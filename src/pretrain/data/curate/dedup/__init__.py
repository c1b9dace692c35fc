"""Deduplication and decontamination: the hash-partitioned tables every dedup step shares (``store``),
the collected-documents base step (``collected``), MinHash signatures and connected components in
rounds, URL normalisation for URL dedup, and the n-gram match against evaluation sets."""
