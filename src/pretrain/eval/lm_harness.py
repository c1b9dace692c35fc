"""lm-evaluation-harness adapter: our checkpoints as a registered ``LM`` named ``pretrain``.

    python -m pretrain.eval.lm_harness --model pretrain --model_args checkpoint=runs/quickstart \\
        --tasks pretrain_offline
    pretrain eval runs/quickstart --lm-eval pretrain_offline

lm-eval has no plugin entry point for third-party models, so the stock ``lm_eval`` script only knows
``pretrain`` once this module is imported; ``python -m pretrain.eval.lm_harness`` is that script with
the model registered and the bundled offline tasks (``pretrain/eval/tasks``) on the include path.

``lm-eval`` is an optional extra (``pip install 'pretrain[eval]'``); importing this module without it
raises an ImportError saying so. Scoring goes through :func:`pretrain.eval.scoring.score_sequences`,
the same code as held-out evaluation, with BOS as the context of the first token.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

try:
    from lm_eval import utils as lm_utils
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the lm-evaluation-harness adapter needs the optional 'eval' extra: pip install 'pretrain[eval]' "
        "(lm-eval>=0.4.13,<0.5)"
    ) from exc

import torch

from pretrain.eval.generation import context_limit, generate_ids
from pretrain.eval.scoring import score_sequences

TASKS_DIR = Path(__file__).parent / "tasks"
"""The bundled offline tasks (YAML + JSONL); pass as include_path to lm-eval."""
BUNDLED_PREFIX = "pretrain_offline"


def _int_or(value: Any, default: int) -> int:
    if value is None or str(value).startswith("auto"):
        return default
    return int(value)


@register_model("pretrain")
class PretrainLM(LM):
    """A ``pretrain`` checkpoint (or an in-memory model + tokenizer) behind lm-eval's LM interface.

    ``checkpoint`` is a checkpoint or run directory (its tokenizer.json is used unless ``tokenizer``
    names another); ``model``/``tokenizer`` objects may be passed instead (tests, in-process use).
    """

    def __init__(self, checkpoint: str | None = None, model: torch.nn.Module | None = None,
                 tokenizer: Any = None, device: str | None = None, batch_size: int | str = 8,
                 max_length: int | str | None = None, max_gen_toks: int | str = 256, **_: Any) -> None:
        super().__init__()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if model is None:
            if checkpoint is None:
                raise ValueError("the pretrain lm-eval model needs model_args checkpoint=DIR")
            from pretrain.model.io import load_model, resolve_checkpoint

            ckpt = resolve_checkpoint(checkpoint)
            model = load_model(ckpt, device=device)
            if tokenizer is None:
                tokenizer = ckpt / "tokenizer.json"
        if tokenizer is None:
            raise ValueError("the pretrain lm-eval model needs a tokenizer (model_args tokenizer=PATH)")
        if isinstance(tokenizer, (str, Path)):
            from pretrain.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        self.model = model.to(device).eval()
        self.tok = tokenizer
        self._device = torch.device(device)
        self.batch_size = _int_or(batch_size, 8)
        self.max_length = _int_or(max_length, context_limit(model) or 2048)
        self.max_gen_toks = _int_or(max_gen_toks, 256)
        bos = getattr(tokenizer, "bos_id", None)
        self.prefix_id = bos if bos is not None else tokenizer.eos_id

    # ------------------------------------------------------------------------------------ helpers
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # Trailing spaces of the context belong to the continuation's first token in byte-level BPE.
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        whole = self.tok.encode(context + continuation)
        ctx = self.tok.encode(context) if context else []
        return ctx, whole[len(ctx):]

    def _score(self, seqs: list[list[int]], starts: list[int]) -> list[Any]:
        return score_sequences(self.model, seqs, starts, self.batch_size, self._device)

    # ---------------------------------------------------------------------------------- interface
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        seqs, starts, empty = [], [], []
        for i, req in enumerate(requests):
            ctx, cont = self._encode_pair(*req.args)
            if not cont:
                empty.append(i)
                continue
            seq = ([self.prefix_id] + ctx + cont)[-(self.max_length + 1):]
            seqs.append(seq)
            starts.append(max(1, len(seq) - len(cont)))
        scored = iter(self._score(seqs, starts) if seqs else [])
        out = []
        for i, req in enumerate(requests):
            if i in empty:
                res = (0.0, True)
            else:
                s = next(scored)
                res = (float(s.logprobs.sum()), bool(s.greedy.all()))
            self.cache_hook.add_partial("loglikelihood", req.args, res)
            out.append(res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        seqs, starts, owner = [], [], []
        for i, req in enumerate(requests):
            (text,) = req.args
            windows = lm_utils.get_rolling_token_windows(
                token_list=self.tok.encode(text), prefix_token=self.prefix_id,
                max_seq_len=self.max_length, context_len=1)
            for ctx, pred in map(lm_utils.make_disjoint_window, windows):
                seqs.append(list(ctx) + list(pred))
                starts.append(len(ctx))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, s in zip(owner, self._score(seqs, starts) if seqs else [], strict=True):
            totals[i] += float(s.logprobs.sum())
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            context, kwargs = req.args
            kwargs = dict(kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", self.max_gen_toks))
            temperature = float(kwargs.pop("temperature", 0.0)) if kwargs.pop("do_sample", False) else 0.0
            ids = [self.prefix_id] + self.tok.encode(context)
            ids = ids[-max(1, self.max_length - max_new):]
            gen = torch.Generator().manual_seed(int(kwargs.pop("seed", 0)))
            new = generate_ids(self.model, ids, max_new, temperature, int(kwargs.pop("top_k", 0)), gen,
                               stop_ids=[self.tok.eos_id] if getattr(self.tok, "eos_id", None) is not None else [],
                               max_context=self.max_length)
            text = self.tok.decode([t for t in new if t != getattr(self.tok, "eos_id", None)])
            for stop in until:
                if stop and stop in text:
                    text = text[:text.index(stop)]
            self.cache_hook.add_partial("generate_until", req.args, text)
            out.append(text)
        return out


def run_lm_eval(model: torch.nn.Module, tokenizer: Any, tasks: list[str], limit: int | float | None = None,
                num_fewshot: int | None = None, batch_size: int = 8, device: str | None = None,
                bootstrap_iters: int = 0) -> dict[str, Any]:
    """Run lm-eval tasks (bundled offline ones included) in process; returns ``{results, versions, ...}``."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm = PretrainLM(model=model, tokenizer=tokenizer, device=device or str(next(model.parameters()).device),
                    batch_size=batch_size)
    # Indexing lm-eval's thousands of built-in task files takes most of a minute on a small CPU:
    # skip it when only bundled tasks are asked for.
    bundled = all(t.startswith(BUNDLED_PREFIX) for t in tasks)
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=not bundled)
    out = simple_evaluate(model=lm, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit,
                          task_manager=manager,
                          bootstrap_iters=bootstrap_iters, log_samples=False)
    if out is None:  # non-zero ranks in distributed runs
        return {}
    return {k: out[k] for k in ("results", "versions", "n-shot", "configs") if k in out}


def main(argv: list[str] | None = None) -> None:
    """``lm_eval`` with ``--model pretrain`` registered and the bundled tasks on the include path."""
    from lm_eval.__main__ import cli_evaluate

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in ("run", "ls", "validate", "-h", "--help"):
        args.insert(0, "run")
    if args and args[0] in ("run", "ls", "validate") and "--include_path" not in args:
        args += ["--include_path", str(TASKS_DIR)]
    sys.argv = ["lm-eval", *args]
    cli_evaluate()


if __name__ == "__main__":
    main()
