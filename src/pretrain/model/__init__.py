"""The model stage: a Llama-style decoder with RoPE scaling, GQA, MoE, multi-token prediction, generation
and Hugging Face export/import. See docs/model.md."""

from pretrain.model.config import ModelConfig, MoEConfig, MTPConfig, RopeScalingConfig
from pretrain.model.transformer import ModelOutput, Transformer

__all__ = ["ModelConfig", "ModelOutput", "MoEConfig", "MTPConfig", "RopeScalingConfig", "Transformer"]
