"""Built-in evaluations of a checkpoint, one module each (registry and context: :mod:`.base`)."""

from pretrain.eval.builtin.base import BuiltinEval, EvalContext, builtin_evals, get_eval, register_eval

__all__ = ["BuiltinEval", "EvalContext", "builtin_evals", "get_eval", "register_eval"]
