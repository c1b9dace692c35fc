"""Model-stage speed, measured side by side in one run (ratios, not absolute times, are the point).

1. Training step (forward + backward) tokens/s: our Transformer vs transformers' LlamaForCausalLM of the
   same shape and weights (sdpa attention), fp32 on CPU.
2. Inside our model: causal fast path vs the boolean document mask; return_logits=False (loss over
   checkpointed chunks, the [B, T, V] logits never materialised) vs keeping the logits.
3. Generation: KV cache vs recomputing the whole prefix every token; greedy self-speculative decoding
   with the MTP drafter after a short training on a periodic toy sequence (forwards, acceptance, time).
4. MoE: sorted sparse dispatch vs the dense every-expert reference.

Usage: python benchmarks/model_throughput.py [--quick] [--threads N] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pretrain.model import ModelConfig, Transformer
from pretrain.model.config import MoEConfig, MTPConfig
from pretrain.model.generate import generate


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Time several functions alternately so background load hits them alike; medians in seconds."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_train_step(cfg: ModelConfig, batch: int, seq: int, repeats: int) -> None:
    ours = Transformer(cfg)
    x = torch.randint(0, cfg.vocab_size, (batch, seq))
    doc = torch.cumsum(torch.rand(batch, seq) < 1 / 64, dim=1)  # ~64-token documents

    def step(model_fn):
        def run():
            loss = model_fn()
            loss.backward()
        return run

    fns = {
        "ours (causal)": step(lambda: ours(x, targets=x).loss),
        "ours (doc mask)": step(lambda: ours(x, targets=x, doc_ids=doc).loss),
        "ours (no logits kept)": step(lambda: ours(x, targets=x, return_logits=False).loss),
    }
    try:
        import tempfile

        import transformers

        from pretrain.model.hf import export_hf

        with tempfile.TemporaryDirectory() as d:
            export_hf(ours, d)
            hf = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="sdpa")
        hf.train()
        fns["transformers Llama"] = step(lambda: hf(x, labels=x).loss)
    except ImportError:
        print("  (transformers not installed: skipping the comparison)")
    res = interleaved(fns, repeats)
    base = res["ours (causal)"]
    print(f"train step, dim={cfg.dim} layers={cfg.n_layers} batch={batch}x{seq}:")
    for k, v in res.items():
        print(f"  {k:22s} {batch * seq / v:10.0f} tok/s   time ratio vs ours (causal) {v / base:5.2f}x")


def bench_generation(cfg: ModelConfig, prompt: int, new: int, repeats: int) -> None:
    model = Transformer(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (1, prompt))
    res = interleaved({
        "kv cache": lambda: generate(model, x, new, greedy=True),
        "no cache": lambda: generate(model, x, new, greedy=True, use_cache=False),
    }, repeats)
    print(f"generation, prompt {prompt} + {new} new tokens (greedy):")
    for k, v in res.items():
        print(f"  {k:22s} {new / v:10.1f} tok/s   time ratio vs kv cache {v / res['kv cache']:5.2f}x")
    stats: dict = {}
    generate(model, x, new, greedy=True, speculative=True, stats=stats)
    print(f"  speculative (untrained MTP): {stats['forwards']} main forwards for {new} tokens, "
          f"acceptance {stats['accepted'] / max(stats['drafted'], 1):.0%} (rises with training)")


def bench_speculative(steps: int) -> None:
    """Train a tiny model with MTP on a periodic sequence, then compare greedy decoding forwards."""
    cfg = ModelConfig(vocab_size=64, dim=64, n_layers=2, n_heads=4, max_seq_len=128, mtp=MTPConfig(depth=1))
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    period = torch.randint(0, 64, (17,))
    stream = period.repeat(40)
    for _ in range(steps):
        starts = torch.randint(0, len(stream) - 65, (8,))
        rows = torch.stack([stream[s : s + 65] for s in starts])
        loss = model(rows[:, :-1], targets=rows[:, 1:]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = stream[:8][None]
    stats: dict = {}
    t = time.perf_counter()
    spec = generate(model, x, 96, greedy=True, speculative=True, stats=stats)
    t_spec = time.perf_counter() - t
    t = time.perf_counter()
    plain = generate(model, x, 96, greedy=True)
    t_plain = time.perf_counter() - t
    print(f"self-speculative decoding after {steps} MTP training steps on a periodic toy sequence (96 tokens):")
    print(f"  identical to greedy: {torch.equal(spec, plain)}; main-model forwards {stats['forwards']} vs 96; "
          f"draft acceptance {stats['accepted'] / max(stats['drafted'], 1):.0%}; wall time ratio "
          f"plain/speculative {t_plain / t_spec:4.2f}x")


def bench_moe(cfg: ModelConfig, tokens: int, repeats: int) -> None:
    model = Transformer(cfg)
    moe = model.moe_layers()[0]
    x = torch.randn(1, tokens, cfg.dim)
    with torch.no_grad():
        res = interleaved({"sparse dispatch": lambda: moe(x), "dense reference": lambda: moe.dense_forward(x)},
                          repeats)
    print(f"MoE layer, {cfg.moe.n_experts} experts top-{cfg.moe.top_k}, {tokens} tokens (forward):")
    for k, v in res.items():
        print(f"  {k:22s} {v * 1e3:8.2f} ms   ratio vs sparse {v / res['sparse dispatch']:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Small shapes and few repeats (well under a minute).")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default).")
    ap.add_argument("--repeats", type=int, default=0, help="Timed repeats per measurement (default 3 quick, 10 full).")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    repeats = args.repeats or (3 if args.quick else 10)
    dim, layers, seq = (128, 2, 128) if args.quick else (256, 4, 256)
    vocab = 4096
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    cfg = ModelConfig(vocab_size=vocab, dim=dim, n_layers=layers, n_heads=4, max_seq_len=seq)
    bench_train_step(cfg, batch=4 if args.quick else 8, seq=seq, repeats=repeats)
    gen_cfg = ModelConfig(vocab_size=vocab, dim=dim, n_layers=layers, n_heads=4, max_seq_len=512,
                          mtp=MTPConfig(depth=1))
    bench_generation(gen_cfg, prompt=32, new=32 if args.quick else 128, repeats=repeats)
    bench_speculative(steps=150 if args.quick else 400)
    moe_cfg = ModelConfig(vocab_size=vocab, dim=dim, n_layers=1, n_heads=4, moe=MoEConfig(n_experts=8, top_k=2))
    bench_moe(moe_cfg, tokens=512 if args.quick else 2048, repeats=repeats)


if __name__ == "__main__":
    main()
