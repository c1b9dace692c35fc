"""CLI commands of the tokenizer stage (argument parsing only; the work is in pretrain.tokenizer and
pretrain.data): `tokenizer train`, `tokenizer stats`, `tokenize`, `mixture show`, `mixture doremi`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

tokenizer_app = typer.Typer(help="Train and inspect the byte-level BPE tokenizer.", no_args_is_help=True)
mixture_app = typer.Typer(help="Inspect and learn domain mixtures.", no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="Preset name or TOML/YAML run config (default: built-in defaults).")
_SET = typer.Option(None, "--set", help="Dotted config override, repeatable: --set tokenizer.vocab_size=4096.")


def _run_config(config: str | None, overrides: list[str] | None):
    from pretrain.config import resolve

    return resolve(config, overrides or [])


@tokenizer_app.command("train")
def train(
    inputs: list[Path] = typer.Argument(..., help="Curated directory, JSONL(.gz/.zst) / Parquet files or "
                                  "dirs, or a datasets folder (save_to_disk, Hub Parquet layout)."),
    out: Path = typer.Option(Path("tokenizer"), "--out", "-o", help="Output directory for tokenizer.json."),
    vocab_size: int = typer.Option(0, help="Vocabulary size (0 = from the config, tokenizer.vocab_size)."),
    val_fraction: float = typer.Option(-1.0, help="Held-out fraction left out of training (-1 = data.val_fraction)."),
    config: str = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """Train byte-level BPE on a domain-balanced sample and write OUT/tokenizer.json."""
    from pretrain.cli.guards import at_least
    from pretrain.data.tokenize import read_documents
    from pretrain.tokenizer import train_tokenizer
    from pretrain.writable import ensure_writable

    at_least("--vocab-size", vocab_size, 0)
    ensure_writable(out, "--out")

    cfg = _run_config(config, overrides)
    if vocab_size:
        cfg.tokenizer.vocab_size = vocab_size
    vf = cfg.data.val_fraction if val_fraction < 0 else val_fraction
    tok = train_tokenizer(read_documents(inputs), cfg.tokenizer, out, val_fraction=vf, inputs=list(inputs))
    sample = getattr(tok, "sample_bytes", {})
    print(f"wrote {tok.path} (vocab {tok.vocab_size}, sha256 {tok.hash[:16]})")
    for domain, n in sorted(sample.items()):
        print(f"  sample {domain:20s} {n / 1e6:8.2f} MB")


@tokenizer_app.command("stats")
def stats(
    inputs: list[Path] = typer.Argument(..., help="Curated directory or JSONL/Parquet files with held-out documents."),
    tokenizer: Path = typer.Option(Path("tokenizer"), "--tokenizer", "-t", help="tokenizer.json or its directory."),
    other: Path = typer.Option(None, "--other", help="A second tokenizer.json to compare against."),
    val_fraction: float = typer.Option(0.05, help="Measure documents held out by id hash at this fraction (0 = all)."),
    max_bytes: int = typer.Option(2_000_000, help="At most this many bytes per domain are measured."),
    out: Path = typer.Option(None, "--out", "-o", help="Write stats JSON here (default: next to the tokenizer)."),
) -> None:
    """Bytes per token per domain on held-out text (and against a second tokenizer)."""
    from rich.console import Console
    from rich.table import Table

    from pretrain.data.tokenize import read_documents
    from pretrain.tokenizer import load_tokenizer
    from pretrain.tokenizer.stats import tokenizer_stats, write_stats

    tok = load_tokenizer(tokenizer)
    oth = load_tokenizer(other) if other else None
    s = tokenizer_stats(tok, read_documents(inputs), val_fraction, oth, max_bytes)
    path = out or tok.path.parent / "stats.json"
    write_stats(s, path)
    table = Table(title=f"bytes per token ({tok.path}, vocab {tok.vocab_size})")
    cols = ["domain", "docs", "MB", "tokens", "bytes/token"] + (["other b/t", "ratio"] if oth else [])
    for c in cols:
        table.add_column(c, justify="left" if c == "domain" else "right")
    for name, row in [*s["domains"].items(), ("overall", s["overall"])]:
        cells = [name, str(row["documents"]), f"{row['bytes'] / 1e6:.2f}", str(row["tokens"]),
                 f"{row['bytes_per_token']:.3f}"]
        if oth:
            cells += [f"{row['other_bytes_per_token']:.3f}", f"{row['ratio']:.3f}"]
        table.add_row(*cells)
    Console(width=120).print(table)
    print(f"wrote {path}")


def tokenize(
    inputs: list[Path] = typer.Argument(..., help="Curated directory, JSONL(.gz/.zst) / Parquet files or "
                                  "dirs, or a datasets folder (save_to_disk, Hub Parquet layout)."),
    tokenizer: Path = typer.Option(Path("tokenizer"), "--tokenizer", "-t", help="tokenizer.json or its directory."),
    out: Path = typer.Option(Path("tokens"), "--out", "-o", help="Output directory (train/ and val/ shards)."),
    val_fraction: float = typer.Option(0.05, help="Fraction of documents held out for validation, by id hash."),
    workers: int = typer.Option(0, help="Encoding processes (0 = automatic; 1 = in-process Rust thread pool)."),
    executor: str = typer.Option("local", "--executor", help="'local' (processes here) or 'ray' (Ray tasks)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. 'auto'); default: "
                                    "a local Ray instance with --workers CPUs."),
) -> None:
    """Encode documents into per-domain token shards with a document index and lineage."""
    from pretrain.cli.guards import at_least, in_range
    from pretrain.data.tokenize import tokenize_corpus
    from pretrain.writable import ensure_writable

    at_least("--workers", workers, 0)
    in_range("--val-fraction", val_fraction, 0, 1, high_open=True)
    ensure_writable(out, "--out")
    s = tokenize_corpus(inputs, tokenizer, out, val_fraction=val_fraction, workers=workers or None,
                        executor=executor, ray_address=ray_address)
    print(f"{s['documents']} documents -> {s['tokens']} tokens in {s['seconds']:.1f}s "
          f"({s['mb_per_s']:.2f} MB/s, {s['workers']} worker(s)) -> {out}")
    for split, domains in s["splits"].items():
        for d, row in domains.items():
            print(f"  {split:5s} {d:20s} {row['documents']:8d} docs {row['tokens']:12d} tokens ({row['dtype']})")


@mixture_app.command("show")
def show(
    tokens: Path = typer.Option(Path("tokens"), "--tokens", help="Token shard directory (with train/)."),
    total_tokens: float = typer.Option(0, help="Planned training tokens (0 = from the config: steps x batch x seq)."),
    config: str = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """Mixture weights over training and the effective tokens and epochs per domain."""
    from rich.console import Console
    from rich.table import Table

    from pretrain.data.mixture import Mixture
    from pretrain.data.shards import load_split

    cfg = _run_config(config, overrides)
    shards = load_split(tokens, "train")
    mix = Mixture(cfg.data.mixture, {d: s.num_tokens for d, s in shards.items()})
    t = cfg.train
    total = int(total_tokens) or t.max_steps * t.micro_batch * t.grad_accum * t.seq_len
    table = Table(title=f"mixture over {total / 1e6:.1f}M training tokens")
    points = [0.0, 0.25, 0.5, 0.75, 1.0]
    for c in ["domain", "tokens", *[f"w@{p:g}" for p in points], "mean w", "eff. tokens", "epochs"]:
        table.add_column(c, justify="left" if c == "domain" else "right")
    weights = [mix.weights_at(p) for p in points]
    report = mix.report(total)
    for d, row in report["domains"].items():
        epochs = f"{row['epochs']:.2f}" + (" !" if row["over_limit"] else "")
        table.add_row(d, f"{row['available_tokens']:,}", *[f"{w[d]:.3f}" for w in weights], f"{row['mean_weight']:.3f}",
                      f"{row['effective_tokens']:,.0f}", epochs)
    Console(width=160).print(table)
    over = [d for d, r in report["domains"].items() if r["over_limit"]]
    if over:
        print(f"warning: {', '.join(over)} would repeat more than {cfg.data.mixture.max_epochs_warning:g} epochs")


@mixture_app.command("doremi")
def doremi(
    tokens: Path = typer.Option(Path("tokens"), "--tokens", help="Token shard directory (with train/)."),
    out: Path = typer.Option(Path("doremi"), "--out", "-o", help="Output directory for weights.json and the plot."),
    steps: int = typer.Option(200, help="Training steps of the reference model and of the proxy model each."),
    tokenizer: Path = typer.Option(None, "--tokenizer", "-t", help="tokenizer.json (default: TOKENS/../tokenizer)."),
    config: str = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """DoReMi (Xie et al. 2023): learn domain weights with a small proxy model trained by Group DRO."""
    from pretrain.cli.guards import at_least
    from pretrain.data.doremi import DoReMiConfig, run_doremi
    from pretrain.writable import ensure_writable

    at_least("--steps", steps, 1)
    ensure_writable(out, "--out")
    cfg = _run_config(config, overrides)
    # The composition root: DoReMi gets the model shape, the mixture and the train fields it borrows.
    dcfg = DoReMiConfig(steps=steps, lr=cfg.train.lr, seq_len=cfg.train.seq_len, micro_batch=cfg.train.micro_batch)
    result = run_doremi(cfg.model, tokens, out, dcfg, tokenizer=tokenizer or cfg.tokenizer.path or None,
                        mixture=cfg.data.mixture)
    print(json.dumps(result["weights"], indent=2))
    print(f"wrote {out / 'weights.json'} and {out / 'weights.png'}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(tokenizer_app, name="tokenizer")
    app.command("tokenize")(tokenize)
    app.add_typer(mixture_app, name="mixture")
