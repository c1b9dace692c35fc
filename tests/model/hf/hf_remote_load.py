"""Load exported folders with transformers alone, in a process where pretrain cannot be imported.

Run as ``python -I hf_remote_load.py CASES.pt RESULTS.pt``. CASES holds, per case, the folder, whether it
needs trust_remote_code, the prompts and how much padding to put before the second; RESULTS gets the
logits, the hidden states, the greedy continuations (alone and in a left-padded batch) and the class
transformers built. Used by test_hf_custom_code.py.
"""

import importlib.util
import os
import sys

# The editable install puts pretrain's src/ on sys.path through a .pth file: take every such entry out.
sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "pretrain"))]
assert importlib.util.find_spec("pretrain") is None, "pretrain is importable in the loading process"

import torch  # noqa: E402
import transformers  # noqa: E402


def main(cases_path: str, results_path: str) -> None:
    cases = torch.load(cases_path)
    results = {}
    for name, case in cases.items():
        model = transformers.AutoModelForCausalLM.from_pretrained(
            case["dir"], trust_remote_code=case["remote"], dtype=torch.float32).eval()
        model.generation_config.eos_token_id = None  # 32 tokens whatever the model emits
        x = case["x"]
        padded, mask = x.clone(), torch.ones_like(x)
        padded[1, : case["pad"]], mask[1, : case["pad"]] = 0, 0  # row 1 left-padded, as batched generation does
        with torch.no_grad():
            out = model(x, output_hidden_states=True)
            gen = model.generate(x, max_new_tokens=32, do_sample=False, use_cache=True)
            batched = model.generate(padded, attention_mask=mask, max_new_tokens=32, do_sample=False)
        results[name] = {"logits": out.logits, "hidden": out.hidden_states, "generated": gen,
                         "padded": batched[:, x.shape[1]:], "class": type(model).__name__,
                         "module": type(model).__module__}
    results["__pretrain_importable__"] = importlib.util.find_spec("pretrain") is not None
    torch.save(results, results_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
