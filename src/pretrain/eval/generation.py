"""Token generation for evaluation: greedy or temperature/top-k sampling, and fixed per-domain samples.

Uses the model's KV cache when it has one (``model.new_cache``; the project's Transformer) and the
whole sequence fits its context; otherwise recomputes the (cropped) context every step, which works
for any module obeying the ``model(input_ids).logits`` contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from pretrain.eval.scoring import autocast_for, logits_of, model_device

# Used when a domain has no held-out document to take a prompt from.
FALLBACK_PROMPTS = {"code": "def ", "docs": "Return the ", "literature": "KING.\n"}


def context_limit(model: torch.nn.Module) -> int | None:
    """The model's maximum context (``model.cfg.max_seq_len``) if it declares one."""
    cfg = getattr(model, "cfg", None)
    return getattr(cfg, "max_seq_len", None)


def check_sampling(temperature: float, top_k: int, top_p: float = 1.0, max_new_tokens: int = 0) -> None:
    """Sampling settings in range, else one ValueError naming the setting: a negative temperature would
    otherwise pass as greedy and a top-p above 1 as no cut, silently."""
    if not temperature >= 0:  # NaN too
        raise ValueError(f"temperature must be >= 0 (0 = greedy; got {temperature})")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = all tokens; got {top_k})")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (got {top_p})")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0 (got {max_new_tokens})")


def _pick(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> int:
    logits = logits.float()
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1).cpu()
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate_ids(
    model: torch.nn.Module,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    stop_ids: Sequence[int] = (),
    max_context: int | None = None,
    use_cache: bool = True,
) -> list[int]:
    """New token ids continuing ``prompt_ids`` (temperature 0 = greedy); stops after a stop id."""
    if not prompt_ids:
        raise ValueError("generation needs a non-empty prompt (start it with BOS)")
    check_sampling(temperature, top_k, max_new_tokens=max_new_tokens)
    dev = model_device(model)
    limit = max_context or context_limit(model)
    was_training = model.training
    model.eval()
    out: list[int] = []
    stops = set(int(s) for s in stop_ids)
    try:
        ids = [int(t) for t in prompt_ids]
        total = len(ids) + max_new_tokens
        if use_cache and hasattr(model, "new_cache") and (limit is None or total <= limit) and max_new_tokens:
            cache = model.new_cache(1, total)
            step_in = torch.tensor([ids], device=dev)
            for _ in range(max_new_tokens):
                with autocast_for(dev):
                    logits = model(step_in, cache=cache, logits_to_keep=1).logits[0, -1]
                nxt = _pick(logits, temperature, top_k, generator)
                out.append(nxt)
                if nxt in stops:
                    break
                step_in = torch.tensor([[nxt]], device=dev)
            return out
        for _ in range(max_new_tokens):
            ctx = ids + out
            if limit:
                ctx = ctx[-limit:]
            with autocast_for(dev):
                logits = logits_of(model, torch.tensor([ctx], device=dev))[0, -1]
            nxt = _pick(logits, temperature, top_k, generator)
            out.append(nxt)
            if nxt in stops:
                break
        return out
    finally:
        model.train(was_training)


def default_prompts(tokenizer: Any, docs_by_domain: Mapping[str, Sequence[Any]] | None,
                    prompt_tokens: int = 16) -> dict[str, str]:
    """A fixed prompt per domain: the first tokens of its first held-out document (else a fallback)."""
    prompts = {}
    for domain, docs in sorted((docs_by_domain or {}).items()):
        if docs and len(docs[0].tokens):
            prompts[domain] = tokenizer.decode([int(t) for t in docs[0].tokens[:prompt_tokens]])
        else:
            prompts[domain] = FALLBACK_PROMPTS.get(domain, "The ")
    return prompts or dict(FALLBACK_PROMPTS)


def make_samples(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Mapping[str, str | Sequence[str]],
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_k: int = 50,
    seed: int = 0,
) -> list[dict[str, str]]:
    """Greedy and sampled continuations of each prompt: [{domain, prompt, greedy, sampled}]."""
    rows = []
    bos = [tokenizer.bos_id] if getattr(tokenizer, "bos_id", None) is not None else []
    eos = [tokenizer.eos_id] if getattr(tokenizer, "eos_id", None) is not None else []
    for domain in prompts:
        items = prompts[domain]
        for prompt in [items] if isinstance(items, str) else list(items):
            ids = bos + tokenizer.encode(prompt)
            gen = torch.Generator().manual_seed(seed)
            greedy = generate_ids(model, ids, max_new_tokens, stop_ids=eos)
            sampled = generate_ids(model, ids, max_new_tokens, temperature, top_k, gen, stop_ids=eos)
            rows.append({"domain": domain, "prompt": prompt,
                         "greedy": tokenizer.decode([t for t in greedy if t not in eos]),
                         "sampled": tokenizer.decode([t for t in sampled if t not in eos])})
    return rows
