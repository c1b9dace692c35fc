"""Byte-level BPE tokenizer: training (:func:`train_tokenizer`), loading (:func:`load_tokenizer`), stats.

See docs/data-loading.md. The saved ``tokenizer.json`` is a standard Hugging Face file:
``transformers.PreTrainedTokenizerFast(tokenizer_file=..., split_special_tokens=True)`` loads it and
encodes exactly like :class:`Tokenizer`.
"""

from pretrain.tokenizer.config import TokenizerConfig
from pretrain.tokenizer.train import train_tokenizer
from pretrain.tokenizer.wrapper import Tokenizer, load_tokenizer

__all__ = ["Tokenizer", "TokenizerConfig", "load_tokenizer", "train_tokenizer"]
