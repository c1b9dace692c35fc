"""Autoregressive generation with a KV cache: greedy, temperature, top-k, top-p (nucleus) sampling, and
greedy self-speculative decoding with the model's own MTP module as the drafter.

Self-speculative decoding (DeepSeek-V3 sec. 2.2 and 5.4.3; Leviathan et al. 2023 for speculative
decoding in general): MTP module 1 proposes the token after next from the main model's hidden state;
the main model checks the pending token and the draft in one forward; the draft is kept when it equals
the main model's own greedy choice, so the output is exactly plain greedy decoding, in fewer forwards.
"""

from __future__ import annotations

import torch

from pretrain.model.transformer import Transformer


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from logits [B, V]."""
    if greedy or temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        # Keep the smallest set of most likely tokens whose probability reaches top_p (Holtzman et al. 2020).
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # the first token is always kept
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _finish(seq: torch.Tensor, prompt_len: int, eos_id: int | None) -> torch.Tensor:
    """Overwrite every row after its first generated EOS with EOS."""
    if eos_id is None:
        return seq
    gen = seq[:, prompt_len:]
    seen = (gen == eos_id).int().cumsum(dim=1)
    after = (seen - (gen == eos_id).int()) > 0
    seq[:, prompt_len:] = gen.masked_fill(after, eos_id)
    return seq


@torch.no_grad()
def generate(
    model: Transformer,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    eos_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    speculative: bool = False,
    stats: dict | None = None,
) -> torch.Tensor:
    """Continue input_ids [B, T] by up to max_new_tokens; returns [B, T + n] (n < max_new_tokens when
    every row has produced eos_id). Greedy (or temperature 0) is deterministic. ``speculative`` uses the
    MTP drafter (greedy, batch 1, needs model.mtp); ``stats`` receives forwards/drafted/accepted counts."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError("input_ids must be a non-empty [batch, length] tensor")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0 (got {max_new_tokens})")
    if not greedy and not speculative and not (temperature >= 0 and top_k >= 0 and 0 < top_p <= 1):
        raise ValueError(f"sampling needs temperature >= 0, top_k >= 0 and 0 < top_p <= 1 "
                         f"(got {temperature}, {top_k}, {top_p})")
    was_training = model.training
    model.eval()
    try:
        if speculative:
            if not (greedy or temperature <= 0) or input_ids.shape[0] != 1:
                raise ValueError("speculative decoding is greedy-only with batch size 1")
            return _speculative_greedy(model, input_ids, max_new_tokens, eos_id, stats)
        return _generate(model, input_ids, max_new_tokens, temperature, top_k, top_p, greedy, eos_id, use_cache,
                         generator, stats)
    finally:
        model.train(was_training)


def _generate(model, ids, max_new, temperature, top_k, top_p, greedy, eos_id, use_cache, generator, stats):
    B, T = ids.shape
    seq = ids
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    cache = model.new_cache(B, T + max_new) if use_cache else None
    step_input = ids
    forwards = 0
    for _ in range(max_new):
        out = model(step_input if use_cache else seq, cache=cache, logits_to_keep=1)
        forwards += 1
        nxt = sample_next(out.logits[:, -1], temperature, top_k, top_p, greedy, generator)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        step_input = nxt[:, None]
        if eos_id is not None:
            done |= nxt == eos_id
            if bool(done.all()):
                break
    if stats is not None:
        stats.update(forwards=forwards)
    return _finish(seq, T, eos_id)


def _speculative_greedy(model: Transformer, ids: torch.Tensor, max_new: int, eos_id, stats) -> torch.Tensor:
    if not len(model.mtp):
        raise ValueError("speculative decoding needs MTP modules (model.mtp.depth >= 1)")
    T = ids.shape[1]
    if max_new == 0:
        return ids
    cache = model.new_cache(1, T + max_new + 2)
    mtp_cache = model.new_cache(1, T + max_new + 2, mtp=True)
    out = model(ids, cache=cache)
    pending = out.logits[:, -1].argmax(dim=-1)  # committed, not yet in the main cache
    generated = [pending]
    # MTP module 1 at position i reads h_i and t_{i+1}; feed the whole prompt, draft from the last one.
    draft_logits, _ = model.mtp_draft(out.hidden, torch.cat([ids[:, 1:], pending[:, None]], dim=1), mtp_cache)
    draft = draft_logits[:, -1].argmax(dim=-1)
    forwards, drafted, accepted = 1, 0, 0
    while len(generated) < max_new and not (eos_id is not None and int(generated[-1]) == eos_id):
        n = cache.length
        out = model(torch.stack([pending, draft], dim=1), cache=cache)
        forwards += 1
        drafted += 1
        greedy = out.logits.argmax(dim=-1)  # [1, 2]: the choices after `pending` and after `draft`
        if int(greedy[0, 0]) == int(draft[0]):
            accepted += 1
            new = [draft, greedy[:, 1]]
            hidden, next_tokens = out.hidden, torch.stack(new, dim=1)
        else:
            cache.truncate(n + 1)  # the draft's key/value are wrong; drop them
            new = [greedy[:, 0]]
            hidden, next_tokens = out.hidden[:, :1], greedy[:, :1]
        generated.extend(new)
        pending = new[-1]
        draft_logits, _ = model.mtp_draft(hidden, next_tokens, mtp_cache)
        draft = draft_logits[:, -1].argmax(dim=-1)
    if stats is not None:
        stats.update(forwards=forwards, drafted=drafted, accepted=accepted)
    new_tokens = torch.stack(generated[:max_new], dim=1)
    if eos_id is not None:
        hits = (new_tokens[0] == eos_id).nonzero()
        if len(hits):
            new_tokens = new_tokens[:, : int(hits[0]) + 1]
    return torch.cat([ids, new_tokens], dim=1)
