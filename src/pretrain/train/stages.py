"""The stage table resolved into step ranges: bulk -> long-context steps -> anneal.

A :class:`Plan` is rebuilt from the config, the (possibly time-budgeted) total number of steps and the
gate extensions granted so far, so it needs no state of its own beyond those numbers. Gate extensions
are "hold" steps: they lengthen a long-context stage without moving the LR schedule, which is frozen at
the stage's last value while the stage keeps training, and every later stage shifts by the same amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pretrain.train.config import StageConfig, TrainConfig
from pretrain.train.schedule import LRSchedule


@dataclass
class Stage:
    index: int
    name: str
    kind: str
    start: int
    """First step index (0-based) of the stage, extensions of earlier stages included."""
    planned: int
    """Steps the table gives the stage."""
    extra: int
    """Hold steps added by failed advance gates."""
    seq_len: int
    micro_batch: int
    cfg: StageConfig = field(repr=False)
    rope_scaling: str = ""
    """RoPE scaling type in force ('' = the model's own), inherited from earlier stages when unset."""
    rope_factor: float = 0.0
    """Its factor (0 = seq_len / the model's original context)."""

    @property
    def steps(self) -> int:
        return self.planned + self.extra

    @property
    def end(self) -> int:
        return self.start + self.steps


def stage_lengths(tcfg: TrainConfig, total: int) -> list[int]:
    """Planned steps per stage for a run of ``total`` steps (table steps are rescaled to a new total)."""
    stages = tcfg.stages or [StageConfig()]
    wanted = [float(s.steps) if s.steps else s.fraction * tcfg.max_steps for s in stages]
    scale = total / tcfg.max_steps
    lengths = [max(1, round(w * scale)) if w > 0 else 0 for w in wanted]
    rest = total - sum(lengths)
    zero = [i for i, w in enumerate(wanted) if w == 0]
    if zero:
        lengths[zero[0]] = max(1, rest)
    elif rest != 0:
        lengths[-1] = max(1, lengths[-1] + rest)  # rounding remainder goes to the last stage
    return lengths


class Plan:
    """Stage ranges and the LR schedule for one run."""

    def __init__(self, tcfg: TrainConfig, total: int | None = None, extensions: dict[str, int] | None = None):
        self.tcfg = tcfg
        self.base_total = int(total or tcfg.max_steps)
        self.extensions = dict(extensions or {})
        stage_cfgs = tcfg.stages or [StageConfig()]
        lengths = stage_lengths(tcfg, self.base_total)
        self.stages: list[Stage] = []
        start = 0
        seq, rope, factor = tcfg.seq_len, "", 0.0
        for i, (sc, n) in enumerate(zip(stage_cfgs, lengths, strict=True)):
            # Context and RoPE carry over from the previous stage unless the stage sets them (an anneal
            # after long-context training keeps the long context, as in Llama 3).
            seq = sc.seq_len or seq
            if sc.rope_scaling:
                rope, factor = sc.rope_scaling, sc.rope_factor
            # Keep tokens per micro-batch constant when the context grows, unless told otherwise.
            mb = sc.micro_batch or max(1, tcfg.micro_batch * tcfg.seq_len // seq)
            st = Stage(i, sc.name, sc.kind, start, n, self.extensions.get(sc.name, 0), seq, mb, sc, rope, factor)
            self.stages.append(st)
            start = st.end
        self.total = start
        anneal = [s for s in self.stages if s.kind == "anneal"]
        anneal_start = self.schedule_step(anneal[0].start) if anneal else None
        self.lr_schedule = LRSchedule(
            total=self.base_total,
            warmup=min(tcfg.warmup_steps, max(0, self.base_total - 1)),
            shape=tcfg.schedule,
            min_ratio=tcfg.min_lr_ratio,
            decay_fraction=tcfg.decay_fraction,
            anneal_start=anneal_start,
        )

    def stage_at(self, step: int) -> Stage:
        """The stage the update with 0-based index ``step`` belongs to (the last one past the end)."""
        for st in self.stages:
            if step < st.end:
                return st
        return self.stages[-1]

    def schedule_step(self, step: int) -> int:
        """Map a training step to its LR-schedule step: hold steps repeat the stage's last schedule step."""
        held = 0
        for st in self.stages:
            if step < st.start + st.planned:
                break
            if step < st.end:  # inside this stage's hold steps
                return st.start + st.planned - 1 - held
            held += st.extra
        return step - held

    def lr_factor(self, step: int) -> float:
        return self.lr_schedule(min(self.schedule_step(step), self.base_total - 1))

    def extend(self, stage_name: str, steps: int) -> Plan:
        ext = dict(self.extensions)
        ext[stage_name] = ext.get(stage_name, 0) + steps
        return Plan(self.tcfg, self.base_total, ext)


def stage_rope_scaling(base_cfg, stage: Stage):
    """The RoPE scaling ``stage`` trains with (a RopeScalingConfig): the stage's own, none, or the model's
    original one; ``base_cfg`` is the model config the run started with."""
    import copy

    from pretrain import configlib
    from pretrain.model.config import RopeScalingConfig

    seq = stage.seq_len
    if stage.rope_scaling and stage.rope_scaling != "none":
        factor = stage.rope_factor or max(1.0, seq / base_cfg.max_seq_len)
        return RopeScalingConfig(**{
            **configlib.to_dict(base_cfg.rope_scaling), "type": stage.rope_scaling, "factor": factor,
            "original_max_position": base_cfg.rope_scaling.original_max_position or base_cfg.max_seq_len,
        })
    if stage.rope_scaling == "none":
        return RopeScalingConfig()
    scaling = copy.deepcopy(base_cfg.rope_scaling)
    if scaling.type != "none" and not scaling.original_max_position:
        # Unset, it means "the context in force": pin it, as the model's setter would pin the old one.
        scaling.original_max_position = max(base_cfg.max_seq_len, seq)
    return scaling


def apply_stage_context(model, base_cfg, stage: Stage) -> None:
    """Set the model's max_seq_len and RoPE scaling for ``stage`` through the model's own
    ``set_rope_scaling`` (the one path that rebuilds rotary tables; no weights change)."""
    model.set_rope_scaling(stage_rope_scaling(base_cfg, stage), max_seq_len=max(base_cfg.max_seq_len, stage.seq_len))
