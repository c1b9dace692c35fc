"""Configuration of a decoder trained with `pretrain` and exported with its own modeling code.

Written next to ``modeling_pretrain.py`` by ``pretrain export hf`` when no stock transformers
architecture expresses the model (value embeddings, ReLU^2 plain MLPs, the smear gate, ...). Both files
import only torch and transformers, so the folder works where pretrain is not installed:

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

Tested with transformers 5.25.0 and torch 2.13.

The field names follow transformers where it has one (hidden_size, num_key_value_heads, ...); the
others keep pretrain's names (its docs/model.md describes each). RoPE scaling lives in ``rope_extension``
and windows in ``window_size`` / ``window_pattern`` on purpose: transformers rewrites ``rope_scaling``
and builds sliding-window caches from ``sliding_window``, while this code masks windows itself.
"""

from transformers import PretrainedConfig


class PretrainConfig(PretrainedConfig):
    model_type = "pretrain"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]

    def __init__(
        self,
        vocab_size=1024,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=64,
        intermediate_size=1024,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        rope_extension=None,
        rope_pattern="R",
        rope_theta_local=0.0,
        hidden_act="silu",
        mlp_gated=True,
        mlp_bias=False,
        qk_norm=False,
        qk_norm_scope="head",
        qkv_bias=False,
        attn_out_bias=False,
        attn_scale=0.0,
        attn_softcap=0.0,
        logit_softcap=0.0,
        window_size=0,
        window_pattern="L",
        value_embeddings="",
        smear_gate=False,
        x0_mix=False,
        norm_placement="pre",
        norm_unit_offset=False,
        scale_embeddings=False,
        moe=None,
        initializer_range=0.02,
        tie_word_embeddings=True,
        use_cache=True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        # {"type": linear | dynamic | yarn | llama3, "factor", "original_max_position", "beta_fast", "beta_slow",
        #  "attn_factor", "low_freq_factor", "high_freq_factor"}; None = plain RoPE.
        self.rope_extension = rope_extension
        self.rope_pattern = rope_pattern  # per layer, cycled: R = RoPE, N = none (NoPE)
        self.rope_theta_local = rope_theta_local  # base of the windowed layers (0 = rope_theta and its scaling)
        self.hidden_act = hidden_act  # silu, gelu_pytorch_tanh or relu2
        self.mlp_gated = mlp_gated
        self.mlp_bias = mlp_bias
        self.qk_norm = qk_norm
        self.qk_norm_scope = qk_norm_scope  # head: per head; all: over the whole q and k projections
        self.qkv_bias = qkv_bias
        self.attn_out_bias = attn_out_bias
        self.attn_scale = attn_scale  # 0 = 1 / sqrt(head_dim)
        self.attn_softcap = attn_softcap
        self.logit_softcap = logit_softcap
        self.window_size = window_size  # keys an S layer sees, the query included
        self.window_pattern = window_pattern  # per layer, cycled: S = sliding window, L = full
        self.value_embeddings = value_embeddings  # per layer, cycled: V = value embedding, - = none
        self.smear_gate = smear_gate
        self.x0_mix = x0_mix
        self.norm_placement = norm_placement  # pre, post or sandwich
        self.norm_unit_offset = norm_unit_offset
        self.scale_embeddings = scale_embeddings
        # {"n_experts", "top_k", "n_shared", "expert_intermediate_size", "router_score": sigmoid | softmax,
        #  "routing_bias": bool (the bias chooses experts), "first_dense_layers"}; None = dense.
        self.moe = moe
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
