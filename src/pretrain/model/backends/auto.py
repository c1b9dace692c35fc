"""``auto`` (the default): ``flex`` on CUDA whenever a T x T mask would be needed (training, prefill),
``sdpa`` otherwise (the causal fast path, and decoding steps with a KV cache)."""

from __future__ import annotations

from pretrain.model.backends.base import AttentionBackend, get_backend, register_backend


@register_backend("auto")
class Auto(AttentionBackend):
    def __init__(self) -> None:
        self.flex, self.sdpa = get_backend("flex"), get_backend("sdpa")

    def select(self, plan, needs_mask: bool, k_len: int) -> AttentionBackend:
        # Decoding steps keep SDPA: their mask is only T x S for a few queries, and a compiled flex would
        # recompile for every new S.
        use_flex = plan.device.type == "cuda" and needs_mask and k_len == plan.q_len
        return self.flex if use_flex else self.sdpa
