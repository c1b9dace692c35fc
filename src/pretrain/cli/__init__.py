"""The `pretrain` command line: a thin Typer layer over the importable Python API.

Each stage registers its commands from its own module here (``register(app)``), so the CLI of a stage
lives next to nothing but argument parsing. Errors the user can fix (bad config, missing or corrupt
file) print one line naming the culprit and exit with status 2, without a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

app = typer.Typer(
    name="pretrain",
    help="Raw files to a trained, evaluated base language model: curate, tokenize, train, evaluate, plan, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per stage; each defines register(app).
_MODULES = ["corpus", "config", "curate", "tokenizer", "model", "train", "eval", "scaling", "report", "quickstart", "lineage"]
for _name in _MODULES:
    _mod = importlib.import_module(f"pretrain.cli.{_name}")
    _mod.register(app)


class UserError(Exception):
    """An error caused by input the user controls; printed as one line."""


def main() -> None:
    from pretrain.configlib import ConfigError
    from pretrain.train.checkpoint import CheckpointSaveError
    from pretrain.train.stability import TrainingDiverged

    try:
        app()
    except (ConfigError, UserError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # disk full, permissions: the error names the file
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except ValueError as exc:  # data and shard errors name their file in the message
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except CheckpointSaveError as exc:  # disk full: the newest valid checkpoint is named; exit as a failed run
        print(f"error: training stopped: {exc}", file=sys.stderr)
        sys.exit(1)
    except TrainingDiverged as exc:  # the run stopped itself (spikes); its checkpoints are kept
        print(f"error: training stopped: {exc}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as exc:
        if not _peer_lost(exc):
            raise
        # Under torchrun a rank whose peer died (kill -9, OOM) or was ended by the watchdog fails in its next
        # collective; torchrun restarts the job, and one line per rank says why instead of a traceback.
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: rank {os.environ.get('RANK', '0')}: a collective failed, a peer process is gone "
              f"({first[:160]})", file=sys.stderr)
        sys.exit(1)


def _peer_lost(exc: RuntimeError) -> bool:
    """A collective that failed because another rank went away (gloo's and NCCL's connection errors)."""
    if "torch.distributed" not in sys.modules:
        return False
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, getattr(dist, "DistError", ())) or ("gloo" in text and (
        "Connection reset" in text or "Connection closed" in text or "Broken pipe" in text))
