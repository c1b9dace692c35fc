"""The live console view: plain lines off a terminal, a redrawn bar on one, ETA from the step rate."""

from __future__ import annotations

import io

from rich.console import Console

from pretrain.report.live import LiveProgress, format_eta


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def row(step: int, **kw) -> dict:
    return {"type": "train", "step": step, "loss": 3.25, "lr": 3e-4, "grad_norm": 0.5, "tokens_per_s": 12345.0,
            "mfu": 0.031, "stage": "bulk", **kw}


def test_plain_lines_with_eta_from_step_rate():
    buf, clock = io.StringIO(), FakeClock()
    with LiveProgress(100, Console(file=buf, force_terminal=False, width=200), clock=clock) as live:
        live.update(row(10))
        clock.t += 20.0  # 10 steps in 20 s -> 2 s/step, 80 steps left -> 160 s
        live.update(row(20))
        live.update({"type": "eval", "step": 20, "val_loss": 3.5, "val_bpb": 1.2, "model": "ema"})
        live.update({"type": "event", "step": 21, "event": "spike", "detail": "loss 9.0"})
        live.update({"type": "event", "step": 25, "event": "checkpoint", "detail": "step_25"})
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("[bulk] step 10/100") and "ETA --:--" in lines[0]
    assert "loss 3.2500" in lines[1] and "lr 3.00e-04" in lines[1] and "tok/s 12,345" in lines[1]
    assert "mfu 3.1%" in lines[1] and lines[1].endswith("ETA 02:40")
    assert lines[2] == "eval step 20 [ema]: val_loss 3.5000  val_bpb 1.2000"
    assert lines[3] == "event step 21: spike loss 9.0"
    assert len(lines) == 4  # checkpoints are not worth a console line


def test_time_limit_caps_eta():
    clock = FakeClock()
    live = LiveProgress(1000, Console(file=io.StringIO()), time_limit_s=60.0, clock=clock)
    live.eta_s(row(1, time_s=1.0))
    clock.t += 1.0
    assert live.eta_s(row(2, time_s=50.0)) == 10.0  # 998 s by rate, but only 10 s of budget left


def test_terminal_bar_shows_progress():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    with LiveProgress(50, console) as live:
        live.update(row(25))
    out = buf.getvalue()
    assert "step 25/50" in out and "loss 3.2500" in out and "bulk" in out


def test_format_eta():
    assert format_eta(None) == "--:--"
    assert format_eta(75) == "01:15"
    assert format_eta(3 * 3600 + 61) == "3:01:01"


def test_a_rows_total_steps_replaces_the_total():
    buf = io.StringIO()
    with LiveProgress(0, Console(file=buf, force_terminal=False, width=200)) as live:
        live.update(row(3, total_steps=40))
        live.update(row(4, total_steps=60))  # a stage extension grew the plan
    assert [line.split("  ")[0] for line in buf.getvalue().splitlines()] == ["[bulk] step 3/40", "[bulk] step 4/60"]


def test_the_trainers_metrics_logger_shows_this_view(tmp_path, capsys):
    from pretrain.train.metrics import MetricsLogger

    log = MetricsLogger(tmp_path, progress=True)
    log.log(row(3, total_steps=40))
    log.log({"type": "event", "step": 3, "event": "spike", "detail": "loss 9.0"})
    log.close()
    err = capsys.readouterr().err  # a plain console (not a terminal): wrapped at its width
    assert err.startswith("[bulk] step 3/40  loss 3.2500") and "event step 3: spike loss 9.0" in err
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
