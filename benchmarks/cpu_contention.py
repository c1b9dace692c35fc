"""Training step time under CPU contention: torch thread count and OpenMP wait policy, side by side.

    python benchmarks/cpu_contention.py [--preset quickstart] [--busy 2] [--steps 4] [--rounds 4]
                                        [--threads 2,1] [--policies default,PASSIVE,spin10k]

Each OpenMP wait policy (OMP_WAIT_POLICY unset, PASSIVE, or GOMP_SPINCOUNT=10000) runs in its own Python
process, because libgomp reads it once, when torch loads it ("default" is libgomp's own: spin a while,
then sleep; pretrain itself sets PASSIVE). The workers live through the whole run and are timed in turn,
round by round, idle and with B `yes > /dev/null` processes beside them (--busy B), so each figure is taken
seconds from the ones it is compared with. A step is one forward + backward + AdamW step of the preset's
model on random tokens (packing and metrics are left out: they do not depend on threads). A machine shared
with other jobs slows every variant about alike: report the ratios, with the load average (`uptime`)
printed at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Environment each worker process starts with (libgomp reads it when torch loads it).
POLICIES = {"default": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}, "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
            "spin10k": {"GOMP_SPINCOUNT": "10000"}}


def hogs(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]


def worker(preset: str) -> None:
    """Serve timing requests on stdin: a line "THREADS STEPS" answers with the step times in ms (JSON)."""
    import torch  # before pretrain, which would set OMP_WAIT_POLICY=PASSIVE for the "default" worker

    from pretrain.config import resolve
    from pretrain.model import Transformer

    cfg = resolve(preset, [])
    cfg.model.vocab_size = cfg.tokenizer.vocab_size
    torch.manual_seed(0)
    model = Transformer(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    B, T, V = cfg.train.micro_batch, cfg.train.seq_len, cfg.model.vocab_size

    def step() -> float:
        x = torch.randint(0, V, (B, T + 1))
        t0 = time.perf_counter()
        model(x[:, :-1], x[:, 1:]).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    print("ready", flush=True)
    for line in sys.stdin:
        th, steps = line.split()
        torch.set_num_threads(int(th))
        step()  # the first step after a change warms the thread pool
        print(json.dumps([step() * 1e3 for _ in range(int(steps))]), flush=True)


class Worker:
    """One long-lived worker process per wait policy; it sleeps on stdin while another one is timed."""

    def __init__(self, preset: str, policy: dict[str, str]):
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(policy)
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", "--preset", preset], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"worker ({policy}) failed to start")
        self.policy = policy

    def time(self, threads: str, steps: int) -> list[float]:
        self.proc.stdin.write(f"{threads} {steps}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--busy", type=int, default=2, help="competing `yes` processes in the loaded rounds")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per variant, load and round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", default="2,1", help="comma-separated torch thread counts")
    ap.add_argument("--policies", default="default,PASSIVE", help="OpenMP wait policies to compare")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.preset)
        return {}
    threads = [t.strip() for t in args.threads.split(",") if t.strip()]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        ap.error(f"unknown policy {bad[0]!r}; known: {', '.join(POLICIES)}")
    print(f"start: {uptime()}", flush=True)
    workers = {p: Worker(args.preset, POLICIES[p]) for p in policies}
    results: dict[str, dict[str, list[float]]] = {p: {} for p in policies}
    try:
        for _ in range(args.rounds):
            for load in (0, args.busy):
                procs = hogs(load)
                try:
                    for p, w in workers.items():
                        for th in threads:
                            results[p].setdefault(f"{th}|{load}", []).extend(w.time(th, args.steps))
                finally:
                    for h in procs:
                        h.kill()
                        h.wait()
    finally:
        for w in workers.values():
            w.close()
    med = {(p, k): statistics.median(v) for p, r in results.items() for k, v in r.items()}
    base = med[(policies[0], f"{threads[0]}|0")]
    table = {}
    print(f"\n{'threads':>7s} {'policy':>8s} {'idle ms':>8s} {f'{args.busy} busy ms':>10s} {'own ratio':>9s} "
          f"{'vs ' + threads[0] + '/' + policies[0] + ' idle':>20s}")
    for p in policies:
        for th in threads:
            idle, busy = med[(p, f"{th}|0")], med[(p, f"{th}|{args.busy}")]
            table[f"{th}/{p}"] = {"idle_ms": round(idle, 1), "busy_ms": round(busy, 1),
                                  "ratio": round(busy / idle, 2), "vs_base": round(busy / base, 2)}
            print(f"{th:>7s} {p:>8s} {idle:8.1f} {busy:10.1f} {busy / idle:8.2f}x {busy / base:19.2f}x")
    print(json.dumps(table))
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
