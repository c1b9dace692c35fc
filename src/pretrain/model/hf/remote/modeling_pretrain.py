"""A decoder trained with `pretrain`, as transformers modeling code (``trust_remote_code=True``).

``pretrain export hf`` writes this file when no stock architecture expresses the model. It computes what
pretrain's own forward computes (its logits agree within 1e-4 in float32) and imports only torch and
transformers. Tested with transformers 5.25.0 and torch 2.13.

One pre-, post- or sandwich-norm block per layer: grouped-query attention (QK-norm per head or over the
whole projection, RoPE with linear / dynamic / YaRN / Llama-3 scaling or none per layer, sliding windows,
soft-capped logits, value embeddings) and a gated or plain feed-forward (SiLU, tanh-GELU or ReLU^2) or
a mixture of experts with an optional routing bias and shared experts. Around the blocks: embedding scale,
the smear gate (the previous token's embedding mixed in) and per-layer residual / embedding scalars.
Pretrain's multi-token-prediction modules are a training aid and are not part of this model.

Parameter names are pretrain's own (``model.layers.0.attn.wq.weight``), so the weights move both ways
unchanged. The KV cache is transformers' ``DynamicCache``; windows are applied by masking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_pretrain import PretrainConfig

try:  # transformers 5: init helpers that skip weights already loaded from the checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4
    from torch.nn import init

VE_GATE_CHANNELS = 12  # input channels the value-embedding gate reads
SMEAR_CHANNELS = 24  # input channels the smear gate reads
# transformers 5.25 calls the cache argument and output field `cache`, earlier versions `past_key_values`.
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
_TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5


def relu_squared(x):
    return F.relu(x).square()


ACTIVATIONS = {"silu": F.silu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu2": relu_squared}


def _cycled(pattern: str, layer: int) -> str:
    return pattern[layer % len(pattern)] if pattern else ""


# ----------------------------------------------------------------------------------------------- RoPE
def _base_inv_freq(dim, theta):
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def rope_frequencies(dim: int, theta: float, ext: dict | None, seq_len: int | None):
    """Inverse frequencies [dim / 2] and the cos/sin multiplier, for the longest position + 1 ``seq_len``."""
    if not ext:
        return _base_inv_freq(dim, theta), 1.0
    kind, s, orig = ext["type"], ext["factor"], ext["original_max_position"]
    if kind == "linear":
        return _base_inv_freq(dim, theta) / s, 1.0
    if kind == "dynamic":  # the base grows once the sequence is longer than the original context
        length = max(seq_len if seq_len and seq_len > orig else orig, orig)
        return _base_inv_freq(dim, theta * ((s * length / orig) - (s - 1)) ** (dim / (dim - 2))), 1.0
    if kind == "yarn":
        return _yarn_inv_freq(dim, theta, ext), ext["attn_factor"] or (1.0 if s <= 1 else 0.1 * math.log(s) + 1.0)
    if kind == "llama3":
        return _llama3_inv_freq(dim, theta, ext), 1.0
    raise ValueError(f"rope_extension.type {kind!r} is not supported")


def _yarn_inv_freq(dim, theta, ext):
    orig = ext["original_max_position"]

    def correction_dim(rotations):
        return (dim * math.log(orig / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(ext["beta_fast"])), 0)
    high = min(math.ceil(correction_dim(ext["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
    keep = 1 - ramp
    return (1.0 / (ext["factor"] * pos_freqs)) * (1 - keep) + (1.0 / pos_freqs) * keep


def _llama3_inv_freq(dim, theta, ext):
    inv_freq = _base_inv_freq(dim, theta)
    s, lo, hi, orig = ext["factor"], ext["low_freq_factor"], ext["high_freq_factor"], ext["original_max_position"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > orig / lo, inv_freq / s, inv_freq)
    smooth = (orig / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / s + smooth * scaled
    medium = ~(wavelen < orig / hi) * ~(wavelen > orig / lo)
    return torch.where(medium, smoothed, scaled)


def rope_tables(positions: torch.Tensor, dim: int, theta: float, ext: dict | None):
    """cos, sin [B or 1, 1, T, dim] for integer positions [B or 1, T] (computed in float32)."""
    inv_freq, factor = rope_frequencies(dim, theta, ext, int(positions.max()) + 1)
    freqs = positions.float()[..., None] * inv_freq.to(positions.device)
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * factor)[:, None], (emb.sin() * factor)[:, None]


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin):
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


# --------------------------------------------------------------------------------------------- layers
class RMSNorm(nn.Module):
    """Normalises in float32; scales by weight in the input dtype, or by (1 + weight) in float32."""

    def __init__(self, dim, eps, unit_offset=False):
        super().__init__()
        self.eps, self.unit_offset = eps, unit_offset
        self.weight = nn.Parameter(torch.zeros(dim) if unit_offset else torch.ones(dim))

    def forward(self, x):
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        if self.unit_offset:
            return (normed * (1.0 + self.weight.float())).to(x.dtype)
        return normed.to(x.dtype) * self.weight


class GatedMLP(nn.Module):
    def __init__(self, dim, hidden, bias, act):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=bias)
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.act = ACTIVATIONS[act]

    def forward(self, x):
        return self.down(self.act(self.gate(x)) * self.up(x))


class PlainMLP(nn.Module):
    def __init__(self, dim, hidden, bias, act):
        super().__init__()
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.down = nn.Linear(hidden, dim, bias=bias)
        self.act = ACTIVATIONS[act]

    def forward(self, x):
        return self.down(self.act(self.up(x)))


def make_mlp(config, hidden):
    mlp = GatedMLP if config.mlp_gated else PlainMLP
    return mlp(config.hidden_size, hidden, config.mlp_bias, config.hidden_act)


class MoE(nn.Module):
    """Top-k routing in float32: sigmoid or softmax affinities, the chosen ones renormalised to sum to 1; a
    routing bias (when trained with one) changes which experts are chosen, not their weights."""

    def __init__(self, config):
        super().__init__()
        m = config.moe
        self.top_k, self.score, self.use_bias = m["top_k"], m["router_score"], m["routing_bias"]
        self.router = nn.Linear(config.hidden_size, m["n_experts"], bias=False)
        self.experts = nn.ModuleList(make_mlp(config, m["expert_intermediate_size"]) for _ in range(m["n_experts"]))
        self.shared = make_mlp(config, m["expert_intermediate_size"] * m["n_shared"]) if m["n_shared"] else None
        self.register_buffer("router_bias", torch.zeros(m["n_experts"], dtype=torch.float32))

    def forward(self, x):
        B, T, D = x.shape
        flat = x.reshape(-1, D)
        logits = F.linear(flat.float(), self.router.weight.float())
        scores = logits.sigmoid() if self.score == "sigmoid" else logits.softmax(dim=-1)
        choice = scores + self.router_bias if self.use_bias else scores
        idx = choice.topk(self.top_k, dim=-1).indices
        gates = scores.gather(1, idx)
        gates = (gates / (gates.sum(dim=-1, keepdim=True) + 1e-20)).to(x.dtype)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (idx == e).nonzero(as_tuple=True)
            if len(token):
                out.index_add_(0, token, expert(flat[token]) * gates[token, slot, None])
        if self.shared is not None:
            out = out + self.shared(flat)
        return out.view(B, T, D)


class SmearGate(nn.Module):
    """x_t + lam * sigmoid(w . x_t[:24]) * x_{t-1}: the previous token's embedding mixed in."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(min(SMEAR_CHANNELS, dim)))
        self.lam = nn.Parameter(torch.zeros(1))

    def forward(self, x, prev=None, prev_real=None):
        """prev [B, 1, D]: the embedding before x[:, 0] (decoding); prev_real [B, T]: 0 where the previous
        position is padding, which then mixes in nothing (as at the start of a sequence)."""
        first = prev if prev is not None else torch.zeros_like(x[:, :1])
        shifted = torch.cat([first, x[:, :-1]], dim=1)
        if prev_real is not None:
            shifted = shifted * prev_real[..., None].to(x.dtype)
        gate = self.lam * torch.sigmoid(x[..., : self.weight.numel()] @ self.weight)[..., None]
        return x + gate.to(x.dtype) * shifted


# ------------------------------------------------------------------------------------------ attention
class Attention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        c = config
        self.layer, self.n_heads, self.n_kv, self.head_dim = layer, c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.window = c.window_size if _cycled(c.window_pattern, layer) == "S" else 0
        rope = "none" if _cycled(c.rope_pattern, layer) == "N" else "global"
        self.rope = "local" if rope == "global" and c.rope_theta_local and self.window else rope
        self.scale, self.softcap = c.attn_scale or None, c.attn_softcap
        q_width, kv_width = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        self.wq = nn.Linear(c.hidden_size, q_width, bias=c.qkv_bias)
        self.wk = nn.Linear(c.hidden_size, kv_width, bias=c.qkv_bias)
        self.wv = nn.Linear(c.hidden_size, kv_width, bias=c.qkv_bias)
        self.wo = nn.Linear(q_width, c.hidden_size, bias=c.attn_out_bias)
        self.norm_all = c.qk_norm_scope == "all"
        q_dim, k_dim = (q_width, kv_width) if self.norm_all else (c.head_dim, c.head_dim)
        self.q_norm = RMSNorm(q_dim, c.rms_norm_eps, c.norm_unit_offset) if c.qk_norm else None
        self.k_norm = RMSNorm(k_dim, c.rms_norm_eps, c.norm_unit_offset) if c.qk_norm else None
        self.value_embed = self.ve_gate = None
        if _cycled(c.value_embeddings, layer) == "V":
            self.value_embed = nn.Embedding(c.vocab_size, kv_width)
            self.ve_gate = nn.Linear(min(VE_GATE_CHANNELS, c.hidden_size), c.num_key_value_heads, bias=False)

    def forward(self, x, rope, mask, cache, input_ids):
        B, T, _ = x.shape
        q, k, v = self.wq(x), self.wk(x), self.wv(x)
        if self.q_norm is not None and self.norm_all:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, self.n_heads, self.head_dim)
        k = k.view(B, T, self.n_kv, self.head_dim)
        v = v.view(B, T, self.n_kv, self.head_dim)
        if self.value_embed is not None:
            gate = 3.0 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate.in_features]))
            v = v + gate.unsqueeze(-1) * self.value_embed(input_ids).view(B, T, self.n_kv, self.head_dim)
        if self.q_norm is not None and not self.norm_all:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.rope != "none":
            cos, sin = rope[self.rope]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer)
        if self.n_kv != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv, dim=1)
        allowed = mask[self.window]
        if self.softcap:
            scores = (q @ k.transpose(-1, -2)) * (self.scale if self.scale is not None else self.head_dim**-0.5)
            scores = self.softcap * torch.tanh(scores / self.softcap)
            if allowed is None and T > 1:  # a fresh sequence: plain causal
                allowed = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
            scores = scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))
            y = scores.float().softmax(dim=-1).to(q.dtype) @ v
        else:
            causal = allowed is None and T > 1
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=causal, scale=self.scale)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


def attention_masks(windows, past: int, T: int, padding, device):
    """{window: boolean [B or 1, 1, T, past + T] mask, or None where plain causal attention is meant}.
    A query sees keys at or before it, inside its window, that are not padding (and always itself)."""
    S = past + T
    q_pos, k_pos = torch.arange(past, S, device=device), torch.arange(S, device=device)
    masks = {}
    for window in windows:
        plain = padding is None and (not window or S <= window)
        if plain and (past == 0 or T == 1):
            masks[window] = None  # is_causal for a fresh sequence; everything for one new token
            continue
        allowed = k_pos[None, :] <= q_pos[:, None]
        if window:
            allowed = allowed & (q_pos[:, None] - k_pos[None, :] < window)
        allowed = allowed[None, None]
        if padding is not None:
            allowed = (allowed & padding[:, None, None, :S].bool()) | (k_pos[None, :] == q_pos[:, None])
        masks[window] = allowed
    return masks


# --------------------------------------------------------------------------------------------- blocks
class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        c = config
        pre, post = c.norm_placement in ("pre", "sandwich"), c.norm_placement in ("post", "sandwich")

        def norm(on):
            return RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_unit_offset) if on else nn.Identity()

        self.attn_norm, self.attn, self.attn_post_norm = norm(pre), Attention(c, layer), norm(post)
        moe = c.moe is not None and layer >= c.moe["first_dense_layers"]
        self.ffn_norm = norm(pre)
        self.ffn = MoE(c) if moe else make_mlp(c, c.intermediate_size)
        self.ffn_post_norm = norm(post)

    def forward(self, x, rope, mask, cache, input_ids):
        x = x + self.attn_post_norm(self.attn(self.attn_norm(x), rope, mask, cache, input_ids))
        return x + self.ffn_post_norm(self.ffn(self.ffn_norm(x)))


class PretrainPreTrainedModel(PreTrainedModel):
    config_class = PretrainConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]
    _supports_sdpa = True

    def _init_weights(self, module):
        """pretrain's initialisation for a fresh model (loaded weights are kept)."""
        super()._init_weights(module)
        if isinstance(module, RMSNorm) and module.unit_offset:
            init.zeros_(module.weight)
        elif isinstance(module, SmearGate):
            init.zeros_(module.weight)
            init.zeros_(module.lam)
        elif isinstance(module, MoE):
            init.zeros_(module.router_bias)
        elif isinstance(module, PretrainModel) and module.resid_scale is not None:
            init.ones_(module.resid_scale)
            init.zeros_(module.x0_scale)


class PretrainModel(PretrainPreTrainedModel):
    def __init__(self, config: PretrainConfig):
        super().__init__(config)
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.hidden_size)
        self.smear = SmearGate(c.hidden_size) if c.smear_gate else None
        self.layers = nn.ModuleList(Block(c, i) for i in range(c.num_hidden_layers))
        self.resid_scale = self.x0_scale = None
        if c.x0_mix:  # x <- a_i x + b_i x0 before layer i
            self.resid_scale = nn.Parameter(torch.ones(c.num_hidden_layers))
            self.x0_scale = nn.Parameter(torch.zeros(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps, c.norm_unit_offset)
        self.post_init()

    def get_input_embeddings(self):
        return self.tok_emb

    def set_input_embeddings(self, value):
        self.tok_emb = value

    def embed(self, input_ids):
        x = self.tok_emb(input_ids)
        if self.config.scale_embeddings:
            x = x * torch.tensor(self.config.hidden_size**0.5, dtype=x.dtype)
        return x

    def _rope(self, positions):
        c = self.config
        tables = {"global": rope_tables(positions, c.head_dim, c.rope_theta, c.rope_extension)}
        if c.rope_theta_local:
            tables["local"] = rope_tables(positions, c.head_dim, c.rope_theta_local, None)
        return tables

    def _smear(self, x, input_ids, cache, past, padding):
        """The smear gate's inputs besides x: the embedding of the token before this input (decoding; the
        cache keeps the ids it has seen) and which previous positions are real tokens, not padding."""
        seen = getattr(cache, "pretrain_token_ids", None) if cache is not None else None
        prev = self.embed(seen[:, past - 1 : past]) if seen is not None and past else None
        if cache is not None:
            cache.pretrain_token_ids = input_ids if seen is None else torch.cat([seen[:, :past], input_ids], dim=1)
        prev_real = None
        if padding is not None:  # the attention mask at positions past - 1 .. past + T - 2
            before = padding[:, past - 1 : past] if past else torch.zeros_like(padding[:, :1])
            prev_real = torch.cat([before, padding[:, past : past + x.shape[1] - 1]], dim=1)
        return self.smear(x, prev, prev_real)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                use_cache=None, output_hidden_states=None, **kwargs):
        cache = cache if cache is not None else kwargs.get("past_key_values")
        needs_ids = self.config.smear_gate or self.config.value_embeddings
        if input_ids is None and (inputs_embeds is None or needs_ids):
            raise ValueError("input_ids are required (this model's smear gate or value embeddings read token ids)")
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        if use_cache and cache is None:
            cache = DynamicCache()
        past = cache.get_seq_length() if cache is not None else 0
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        T = x.shape[1]
        padding = attention_mask if attention_mask is not None and not bool(attention_mask.all()) else None
        if self.smear is not None:
            x = self._smear(x, input_ids, cache, past, padding)
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=x.device)[None]
        rope = self._rope(position_ids)
        mask = attention_masks({layer.attn.window for layer in self.layers}, past, T, padding, x.device)
        x0, hidden = x, []
        for i, layer in enumerate(self.layers):
            hidden.append(x)
            if self.resid_scale is not None:
                x = self.resid_scale[i] * x + self.x0_scale[i] * x0
            x = layer(x, rope, mask, cache, input_ids)
        x = self.norm(x)
        states = (*hidden, x) if output_hidden_states else None  # embeddings, each layer's input, the final norm
        return BaseModelOutputWithPast(last_hidden_state=x, hidden_states=states, **{_CACHE_FIELD: cache if use_cache else None})


class PretrainForCausalLM(PretrainPreTrainedModel, GenerationMixin):
    # transformers 5 maps each tied weight to its source; 4 listed the tied ones.
    _tied_weights_keys = {"lm_head.weight": "model.tok_emb.weight"} if _TRANSFORMERS_5 else ["lm_head.weight"]

    def __init__(self, config: PretrainConfig):
        super().__init__(config)
        self.model = PretrainModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.tok_emb

    def set_input_embeddings(self, value):
        self.model.tok_emb = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                labels=None, use_cache=None, output_hidden_states=None, logits_to_keep=0, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None \
            else self.config.output_hidden_states
        out = self.model(input_ids, attention_mask, position_ids, cache if cache is not None
                         else kwargs.get("past_key_values"), inputs_embeds, use_cache, output_hidden_states)
        h = out.last_hidden_state
        logits = self.lm_head(h if not logits_to_keep else h[:, -logits_to_keep:])
        if self.config.logit_softcap:
            logits = torch.tanh(logits / self.config.logit_softcap) * self.config.logit_softcap
        loss = None
        if labels is not None:  # next-token loss: position t predicts labels[t + 1]
            shifted = logits[:, :-1].float().reshape(-1, logits.shape[-1])
            loss = F.cross_entropy(shifted, labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        result = CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                        **{_CACHE_FIELD: getattr(out, _CACHE_FIELD)})
        return result.to_tuple() if kwargs.get("return_dict") is False else result


__all__ = ["PretrainForCausalLM", "PretrainModel", "PretrainPreTrainedModel"]
