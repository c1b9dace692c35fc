"""Hugging Face interop: export to stock ``transformers`` architectures, import their checkpoints.

Export picks the closest stock architecture that expresses the model, so ``AutoModelForCausalLM`` loads
the result without ``trust_remote_code`` (the registry in :mod:`.archs` says which features each can
express):

- dense: Llama (the lingua franca of serving stacks), Qwen3 (QK-norm), Qwen2 (q/k/v biases), Mistral
  (one sliding window), OLMo 2 (post-norm, whole-projection QK-norm), Gemma 3 (sandwich (1 + w) norms,
  embedding scale, GeGLU, local/global layers), SmolLM3 (NoPE layers), Phi-3 (fused projections);
- MoE: Glm4Moe (sigmoid routing, score-correction bias, shared experts, leading dense layers), Mixtral
  and Qwen3-MoE (softmax routing). The MTP modules are never exported (a training aid).

Where none fits, export writes our own modeling code beside the weights (:mod:`.custom`, the files in
``remote/``; ``trust_remote_code=True``), so every model we train loads in transformers.

Files: :mod:`.families` (one module per architecture family: its features, config.json keys and
weight-name hooks), :mod:`.archs` (the registry and export's choice), :mod:`.hfconfig` (the shared
config.json keys), :mod:`.ropeconfig`, :mod:`.weights` (common tensor names, fused experts, reading
safetensors with or without an index), :mod:`.tokenizer`, :mod:`.convert` (the two entry points). Weights are safetensors only, never pickled ``pytorch_model.bin``.
"""

from pretrain.model.hf.archs import ARCHS, choose
from pretrain.model.hf.convert import export_hf, import_hf
from pretrain.model.hf.hfconfig import config_from_hf, hf_config
from pretrain.model.hf.tokenizer import SPECIAL_TOKENS
from pretrain.model.hf.weights import name_map

__all__ = ["ARCHS", "SPECIAL_TOKENS", "choose", "config_from_hf", "export_hf", "hf_config", "import_hf", "name_map"]
