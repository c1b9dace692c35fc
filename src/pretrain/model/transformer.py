"""The Llama-style decoder: embedding, pre-norm blocks (attention + SwiGLU or MoE), final norm, LM head,
plus optional DeepSeek-V3 multi-token-prediction (MTP) modules. Config fields switch in the variants of
other open models (post/sandwich norms, NoPE and local-RoPE layers, embedding scaling, soft-capping).

Forward contract (docs/architecture.md): ``forward(input_ids, targets=None, doc_ids=None,
position_ids=None)`` returns a :class:`ModelOutput`. ``loss = ce_sum / n_tokens + aux_loss + mtp_loss``;
trainers that accumulate gradients over micro-batches use ``ce_sum / total_tokens`` instead of ``loss``
(plus the mean-type aux and MTP terms divided by the number of micro-batches).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pretrain.model.attention import KVCache
from pretrain.model.block import Block, MTPModule, make_norm, shift_left
from pretrain.model.config import ModelConfig, RopeScalingConfig
from pretrain.model.layers import RMSNorm, SmearGate
from pretrain.model.masking import AttentionPlan
from pretrain.model.moe import MoE, max_violation
from pretrain.model.rope import RotaryEmbedding

# return_logits=False computes the loss over chunks of about this many logits (16 MiB in fp32).
CE_CHUNK_ELEMENTS = 1 << 22


@dataclass
class ModelOutput:
    logits: torch.Tensor | None
    """[B, T, V] (None when return_logits=False; only the last positions with logits_to_keep)."""
    loss: torch.Tensor | None = None
    """Mean CE over valid targets + aux_loss + mtp_loss (None without targets)."""
    ce_sum: torch.Tensor | None = None
    """Sum of the next-token CE over targets != -100 (fp32 scalar)."""
    n_tokens: torch.Tensor | None = None
    """Number of targets != -100 (int64 scalar tensor, so no device sync is forced)."""
    aux_loss: torch.Tensor | None = None
    """Weighted MoE balance terms, mean over MoE layers (0 for dense models)."""
    mtp_loss: torch.Tensor | None = None
    """lambda * mean over MTP depths of each depth's mean CE (0 without MTP)."""
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """Device scalars for logging (moe/max_violation, mtp/loss_1, ...): reading them is the caller's
    host sync, so the trainer reads them on logged steps only."""
    hidden: torch.Tensor | None = None
    """Last block's output before the final norm [B, T, dim] (MTP drafting input)."""


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError("config field 'model.vocab_size': must be set (> 0) before building the model")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.rope = RotaryEmbedding(cfg)
        # Gemma 3's windowed layers rotate with their own base and no context scaling.
        self.rope_local = RotaryEmbedding(replace(cfg, rope_theta=cfg.rope_theta_local,
                                                  rope_scaling=RopeScalingConfig())) if cfg.rope_theta_local else None
        self.smear = SmearGate(cfg.dim) if cfg.smear_gate else None
        self.layers = nn.ModuleList(Block(cfg, i, i, cfg.is_moe_layer(i)) for i in range(cfg.n_layers))
        if cfg.x0_mix:  # per-layer scalars a_i (residual) and b_i (embedding), see ModelConfig.x0_mix
            self.resid_scale = nn.Parameter(torch.ones(cfg.n_layers))
            self.x0_scale = nn.Parameter(torch.zeros(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.mtp = nn.ModuleList(MTPModule(cfg, k) for k in range(cfg.mtp.depth))
        self.mtp_weight = cfg.mtp.weight
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------- setup
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """N(0, init_std) everywhere; projections into the residual stream (attention output, FFN down)
        get init_std / sqrt(2 n_layers) (GPT-2's scaled init), so the residual variance does not grow with
        depth (zero with zero_init_proj: each block starts as the identity). Norms start at 1, router
        biases at 0."""
        std = self.cfg.init_std
        residual_std = 0.0 if self.cfg.zero_init_proj else std / math.sqrt(2 * self.cfg.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual = name.endswith("attn.wo") or name.endswith(".down")
                if is_residual and not residual_std:
                    nn.init.zeros_(module.weight)
                else:
                    nn.init.normal_(module.weight, 0.0, residual_std if is_residual else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
            elif isinstance(module, RMSNorm):
                (nn.init.zeros_ if module.unit_offset else nn.init.ones_)(module.weight)
            elif isinstance(module, MoE):
                module.router_bias.zero_()
                module.load.zero_()
            elif isinstance(module, SmearGate):
                nn.init.uniform_(module.weight, 0.0, 0.02)
                module.lam.zero_()  # closed: the model starts without it
        if self.cfg.x0_mix:
            depth = torch.arange(self.cfg.n_layers, dtype=torch.float32) / max(1, self.cfg.n_layers - 1)
            self.resid_scale.copy_(1.15 - 0.10 * depth)
            self.x0_scale.copy_(0.20 - 0.15 * depth)

    def moe_layers(self) -> list[MoE]:
        return [m for m in self.modules() if isinstance(m, MoE)]

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Unique parameters (a tied head counts once); exclude_embeddings drops embedding and untied head."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.tok_emb.weight.numel()
            if not self.cfg.tie_embeddings:
                n -= self.lm_head.weight.numel()
            for layer in self.layers:  # value embeddings and their gates (see pretrain.model.size)
                if layer.attn.value_embed is not None:
                    n -= layer.attn.value_embed.weight.numel() + layer.attn.ve_gate.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: 6 N + 12 L H d_head T (see pretrain.model.size)."""
        return self.cfg.flops_per_token(seq_len or self.cfg.max_seq_len)

    def set_rope_scaling(self, scaling: RopeScalingConfig, max_seq_len: int | None = None) -> None:
        """Switch RoPE scaling on a (trained) model for context extension; weights are untouched."""
        from pretrain import configlib

        if scaling.type != "none" and not scaling.original_max_position:
            # Scaling is relative to the context the model was trained at, i.e. the current max_seq_len.
            scaling.original_max_position = self.cfg.max_seq_len
        self.cfg.rope_scaling = scaling
        if max_seq_len:
            self.cfg.max_seq_len = max_seq_len
        configlib.validate(self.cfg, "model")
        device = self.tok_emb.weight.device
        self.rope = RotaryEmbedding(self.cfg).to(device)

    def set_mtp_weight(self, weight: float) -> None:
        """Set lambda of the MTP loss (the trainer follows cfg.mtp.weight_at(progress))."""
        self.mtp_weight = float(weight)

    def update_router_biases(self) -> None:
        """Call once per optimizer step: auxiliary-loss-free bias update of every MoE layer (dense: no-op)."""
        for moe in self.moe_layers():
            moe.update_router_biases()

    def expert_loads(self) -> list[torch.Tensor]:
        """Tokens per expert in the last forward, one tensor per MoE layer (for logging)."""
        return [m.last_counts for m in self.moe_layers() if m.last_counts is not None]

    def drop_mtp(self) -> None:
        """Remove the MTP modules (they are a training aid; export leaves them out)."""
        self.mtp = nn.ModuleList()
        self.cfg = copy.deepcopy(self.cfg)  # the caller's config object keeps its MTP settings
        self.cfg.mtp.depth = 0

    def new_cache(self, batch: int, max_len: int, mtp: bool = False) -> KVCache:
        """An empty KV cache for the main layers (or, with mtp=True, for the MTP modules' blocks)."""
        p = self.tok_emb.weight
        n = len(self.mtp) if mtp else self.cfg.n_layers
        return KVCache(n, batch, self.cfg.kv_heads, self.cfg.head_dim, max_len, p.device, p.dtype)

    # --------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_logits: bool = True,
        cache: KVCache | None = None,
        logits_to_keep: int = 0,
    ) -> ModelOutput:
        """input_ids [B, T]; targets [B, T] (-100 = ignore); doc_ids [B, T]: attention stays inside a
        document; position_ids [B, T] for RoPE (default offset..offset+T-1). With ``cache``, the tokens are
        appended after the cached positions. logits_to_keep > 0 computes logits for the last positions only.
        """
        B, T = input_ids.shape
        offset = cache.length if cache is not None else 0
        if doc_ids is not None and offset:
            raise ValueError("doc_ids cannot be combined with a non-empty KV cache")
        rope = self._rope_tables(T, offset, position_ids)
        # One plan for all layers: each mask (one per distinct window) is built once, not per layer.
        plan = AttentionPlan(T, doc_ids, self.cfg.attention_kernel, input_ids.device)
        if cache is None:
            plan.prepare({block.attn.window for block in [*self.layers, *(m.block for m in self.mtp)]})

        x = self.embed(input_ids)
        if self.smear is not None:
            x = self.smear(x, self._previous_embedding(input_ids, cache), doc_ids)
        x0 = x
        aux_terms = []
        for i, layer in enumerate(self.layers):
            if self.cfg.x0_mix:
                x = self.resid_scale[i] * x + self.x0_scale[i] * x0
            x, aux = layer(x, *rope[layer.attn.rope], plan, cache, input_ids)
            if aux is not None:
                aux_terms.append(aux)
        if cache is not None:
            cache.advance(T)
        hidden = x
        # Without return_logits the loss is computed chunk by chunk and the [B, T, V] logits never exist.
        lean = targets is not None and not return_logits
        logits = None
        if not lean:
            logits = self.head(self.norm(x if logits_to_keep <= 0 else x[:, -logits_to_keep:]))

        out = ModelOutput(logits=logits if return_logits else None, hidden=hidden)
        if targets is None:
            return out  # (no metrics: they would cost a device sync per decoding step)
        moe_layers = [layer.ffn for layer in self.layers if isinstance(layer.ffn, MoE)]
        if moe_layers:
            vios = torch.stack([max_violation(m.last_counts) for m in moe_layers])
            out.metrics["moe/max_violation"] = vios.mean()
            out.metrics["moe/max_violation_worst"] = vios.max()

        if logits_to_keep > 0:
            raise ValueError("targets need logits at every position (logits_to_keep must be 0)")
        out.ce_sum = self._ce_sum(hidden, self.norm, targets, logits)
        out.n_tokens = (targets != -100).sum()
        zero = hidden.new_zeros((), dtype=torch.float32)
        out.aux_loss = torch.stack(aux_terms).mean() if aux_terms else zero
        out.mtp_loss = self._mtp_loss(hidden, input_ids, targets, doc_ids, rope, plan, out.metrics, lean)
        out.loss = out.ce_sum / out.n_tokens.clamp(min=1) + out.aux_loss + out.mtp_loss
        if moe_layers:
            out.metrics["aux_loss"] = out.aux_loss.detach()
        return out

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings, times sqrt(dim) in the embedding's dtype with scale_embeddings (as Gemma)."""
        x = self.tok_emb(input_ids)
        if self.cfg.scale_embeddings:
            x = x * torch.tensor(self.cfg.dim**0.5, dtype=x.dtype)
        return x

    def _previous_embedding(self, input_ids: torch.Tensor, cache: KVCache | None) -> torch.Tensor | None:
        """The smear gate's input for position 0: the embedding of the token cached just before (decoding),
        else None. The cache keeps token ids, not embeddings, so a truncated cache stays right."""
        if cache is None:
            return None
        B, T = input_ids.shape
        if cache.tokens is None:
            cache.tokens = torch.zeros(B, cache.max_len, dtype=input_ids.dtype, device=input_ids.device)
        cache.tokens[:, cache.length : cache.length + T] = input_ids
        return self.embed(cache.tokens[:, cache.length - 1 : cache.length]) if cache.length else None

    def head(self, normed: torch.Tensor) -> torch.Tensor:
        """LM head logits, soft-capped to cap * tanh(z / cap) when logit_softcap is set (Gemma 2)."""
        logits = self.lm_head(normed)
        if self.cfg.logit_softcap:
            cap = self.cfg.logit_softcap
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _rope_tables(self, T: int, offset: int, position_ids=None) -> dict[str, tuple]:
        """cos/sin per kind of layer: global RoPE, the windowed layers' local RoPE, none (NoPE)."""
        tables = {"global": self.rope(T, offset, position_ids), "none": (None, None)}
        if self.rope_local is not None:
            tables["local"] = self.rope_local(T, offset, position_ids)
        return tables

    def _chunk_ce(self, norm: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.head(norm(x)).float()
        return F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")

    def _ce_sum(self, x, norm, targets, logits=None) -> torch.Tensor:
        """Summed CE of head(norm(x)) against targets. Given logits, from them; otherwise in token chunks
        under activation checkpointing, so at most one chunk of logits is alive (the head matmul is
        recomputed in backward: memory for about a third more head compute)."""
        if logits is not None:
            return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=-100, reduction="sum")
        flat_x, flat_t = x.reshape(-1, x.shape[-1]), targets.reshape(-1)
        chunk = max(1, CE_CHUNK_ELEMENTS // self.cfg.vocab_size)
        total = flat_x.new_zeros((), dtype=torch.float32)
        for i in range(0, flat_x.shape[0], chunk):
            args = (norm, flat_x[i : i + chunk], flat_t[i : i + chunk])
            if torch.is_grad_enabled():
                total = total + checkpoint(self._chunk_ce, *args, use_reentrant=False)
            else:
                total = total + self._chunk_ce(*args)
        return total

    def _mtp_loss(self, hidden, input_ids, targets, doc_ids, rope, plan, metrics, lean=False) -> torch.Tensor:
        """Sequential MTP (DeepSeek-V3 sec. 2.2): depth k sees tokens up to t_{i+k} and predicts t_{i+k+1}."""
        zero = hidden.new_zeros((), dtype=torch.float32)
        if not len(self.mtp) or self.mtp_weight == 0:
            return zero  # lambda = 0 skips the MTP compute altogether
        losses = []
        h = hidden
        for k, module in enumerate(self.mtp, start=1):
            tokens_k = shift_left(input_ids, k, fill=0)
            targets_k = shift_left(targets, k, fill=-100)
            if doc_ids is not None:  # never predict across a document boundary
                targets_k = targets_k.masked_fill(shift_left(doc_ids, k, fill=-1) != doc_ids, -100)
            h, _ = module(h, self.embed(tokens_k), rope, plan)
            logits_k = None if lean else self.head(module.norm(h))
            ce = self._ce_sum(h, module.norm, targets_k, logits_k)
            loss_k = ce / (targets_k != -100).sum().clamp(min=1)
            metrics[f"mtp/loss_{k}"] = loss_k.detach()
            losses.append(loss_k)
        return self.mtp_weight * torch.stack(losses).mean()

    def mtp_draft(self, hidden: torch.Tensor, next_tokens: torch.Tensor, cache: KVCache | None = None,
                  position_offset: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run MTP module 1 on main hidden states h_i [B, T, dim] and tokens t_{i+1} [B, T]; returns its
        logits for t_{i+2} [B, T, V] and its hidden states. Used for self-speculative decoding."""
        if not len(self.mtp):
            raise ValueError("model has no MTP modules (model.mtp.depth = 0)")
        T = next_tokens.shape[1]
        offset = cache.length if cache is not None else (position_offset or 0)
        module = self.mtp[0]
        plan = AttentionPlan(T, None, self.cfg.attention_kernel, hidden.device)
        h, _ = module(hidden, self.embed(next_tokens), self._rope_tables(T, offset), plan, cache)
        if cache is not None:
            cache.advance(T)
        return self.head(module.norm(h)), h
