"""SmolLM3 (SmolLM3ForCausalLM): NoPE layers (``no_rope_layers``), per-layer sliding windows."""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.model.hf.families.base import BIAS, Arch, pattern_of, register_family


@dataclass(frozen=True)
class SmolLM3(Arch):
    def export_config(self, cfg) -> dict:
        return {"no_rope_layers": [int(cfg.layer_rope(i) != "none") for i in range(cfg.n_layers)],
                "no_rope_layer_interval": len(cfg.rope_pattern)}

    def import_config(self, cfg, hf: dict, where: str) -> None:
        flags = hf.get("no_rope_layers")
        if flags is None:
            interval = int(hf.get("no_rope_layer_interval", 4))
            flags = [int((i + 1) % interval != 0) for i in range(cfg.n_layers)]
        cfg.rope_pattern = pattern_of(["R" if f else "N" for f in flags])


SMOLLM3 = register_family(SmolLM3("smollm3", "SmolLM3ForCausalLM", free=BIAS | {"mlp_bias", "rope_pattern"},
                                  windows="layers", attention_bias="all", order=70))
