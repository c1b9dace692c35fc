"""CLI commands of the model stage (argument parsing only; the work is in pretrain.model)."""

from __future__ import annotations

from pathlib import Path

import typer

export_app = typer.Typer(help="Export a checkpoint to other formats.", no_args_is_help=True)
import_app = typer.Typer(help="Import checkpoints from other formats.", no_args_is_help=True)


def generate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint directory, or a run directory (its final model)."),
    prompt: list[str] = typer.Option([""], "--prompt", "-p", help="Prompt text; repeat for several prompts."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", "-n", help="Tokens to generate per prompt."),
    temperature: float = typer.Option(0.8, help="Sampling temperature (0 = greedy)."),
    top_k: int = typer.Option(50, help="Sample among the k most likely tokens (0 = all)."),
    top_p: float = typer.Option(0.95, help="Nucleus sampling: smallest set of tokens with this probability mass."),
    greedy: bool = typer.Option(False, "--greedy", help="Deterministic argmax decoding."),
    speculative: bool = typer.Option(False, "--speculative", help="Greedy self-speculative decoding with the MTP module."),
    seed: int = typer.Option(0, help="Random seed for sampling."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Do not prepend the BOS token (<|bos|>) to the prompt."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N."),
) -> None:
    """Continue prompts with a trained model (KV cache; temperature, top-k, top-p or greedy)."""
    import torch

    from pretrain.cli.guards import at_least, in_range, note_checkpoint
    from pretrain.model.generate import generate as run_generate
    from pretrain.model.io import find_tokenizer, load_model, resolve_checkpoint

    at_least("--max-new-tokens", max_new_tokens, 0)
    at_least("--temperature", temperature, 0)
    at_least("--top-k", top_k, 0)
    in_range("--top-p", top_p, 0, 1, low_open=True)
    ckpt = resolve_checkpoint(checkpoint)
    note_checkpoint(checkpoint, ckpt)
    tok_path = find_tokenizer(ckpt)
    if tok_path is None:
        raise FileNotFoundError(f"no tokenizer.json in checkpoint {ckpt} (nor in its run's tokenizer/)")
    from pretrain.tokenizer import load_tokenizer

    # The wrapper knows the special tokens' roles, also for an imported model's own tokenizer.
    wrapped = load_tokenizer(tok_path)
    tok = wrapped.hf
    model = load_model(ckpt, device=device)
    bos, eos = wrapped.bos_id, wrapped.eos_id
    gen = torch.Generator(device=device).manual_seed(seed)
    for text in prompt:
        ids = tok.encode(text, add_special_tokens=False).ids
        if bos is not None and not no_bos:
            ids = [bos] + ids
        if not ids:
            raise ValueError("prompt encodes to no tokens; pass --prompt TEXT or drop --no-bos")
        stats: dict = {}
        out = run_generate(model, torch.tensor([ids], device=device), max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, greedy=greedy or speculative, eos_id=eos, generator=gen,
                           speculative=speculative, stats=stats)
        new = out[0, len(ids):].tolist()
        print(text + tok.decode(new, skip_special_tokens=True))
        if speculative:
            acc = stats["accepted"] / max(stats["drafted"], 1)
            print(f"[speculative: {len(new)} tokens in {stats['forwards']} forwards, draft acceptance {acc:.0%}]")


@export_app.command("hf")
def export_hf(
    checkpoint: Path = typer.Argument(..., help="Checkpoint directory, or a run directory (its final model)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory for the Hugging Face files."),
    dtype: str = typer.Option("float32", help="Weight dtype: float32, bfloat16 or float16."),
    tokenizer: Path = typer.Option(None, help="tokenizer.json to include (default: the checkpoint's copy)."),
) -> None:
    """Write config.json + model.safetensors + tokenizer files loadable by transformers' AutoModelForCausalLM.

    The closest stock architecture that expresses every feature of the model; otherwise the model's own
    modeling code beside the weights (load with trust_remote_code=True; see docs/model.md)."""
    import json

    from pretrain.cli.guards import note_checkpoint
    from pretrain.model.hf import export_hf as run_export
    from pretrain.model.io import resolve_checkpoint
    from pretrain.writable import ensure_writable

    try:
        note_checkpoint(checkpoint, resolve_checkpoint(checkpoint))
    except (OSError, ValueError):
        pass  # the export's own checks name what is missing or damaged, more precisely
    existed = out.exists()
    ensure_writable(out, "--out")
    try:
        path = run_export(checkpoint, out, tokenizer=tokenizer, dtype=dtype)
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the probe's folder: a failed export leaves nothing behind
        raise
    config = json.loads((path / "config.json").read_text())
    arch = config["architectures"][0]
    if "auto_map" in config:
        print(f"exported {arch} with its own modeling code to {path} (no stock transformers architecture has "
              "every feature of this model); load it with AutoModelForCausalLM.from_pretrained(DIR, "
              "trust_remote_code=True)")
    else:
        print(f"exported {arch} to {path}")


@import_app.command("hf")
def import_hf(
    directory: Path = typer.Argument(..., help="Hugging Face model directory (config.json + *.safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
) -> None:
    """Import a Hugging Face checkpoint to continue pre-training from it.

    Llama, Mistral, Qwen2/2.5, Qwen3, OLMo 2, Gemma 3, SmolLM3, Phi-3, Qwen3-MoE, Mixtral, GLM-4.5 MoE, and
    folders `pretrain export hf` wrote with their own modeling code (bit-exact weights).
    Writes the weights, the model's own tokenizer files and OUT/continue.toml, a run config for
    `pretrain train OUT/continue.toml data.tokens=...` (see docs/model.md).
    """
    from pretrain.model.hf import import_hf as run_import
    from pretrain.writable import ensure_writable

    ensure_writable(out, "--out")
    model = run_import(directory, out)
    print(f"imported {model.cfg.hf_architecture} ({model.num_params() / 1e6:.2f}M parameters) into {out}; "
          f"continue with: pretrain train {Path(out) / 'continue.toml'} data.tokens=...")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("generate")(generate)
    app.add_typer(export_app, name="export")
    app.add_typer(import_app, name="import")
