#!/usr/bin/env bash
# Run ON the lent GPU machine, from the repo root: the GPU tests and the GPU benchmark rows in one call
# that fits a 10-minute command (each part has its own limit, so a hang costs only that part).
#   here:    bash benchmarks/device/wheels.sh      (once: the wheels the device image lacks, into .whl/)
#   device:  run(command="bash benchmarks/device/gpu_checks.sh", carry=[".whl"], timeout_s=590)
# What comes back under $OUT (8 files at most): env.txt, gpu_tests.log, gpu_tests.xml,
# train_1b.{log,json}, train_124m.{log,json}. The JSON files are rewritten after every measured row, so
# a part stopped at its limit still returns the rows it finished. Limits (seconds) can be set:
#   TEST_S (pytest -m gpu, default 220: a dozen Triton compiles), B1_ROWS_S / B1_S (1B rows: start no row after / hard stop),
#   B2_ROWS_S / B2_S (124M and long-context rows), PARTS ("tests 1b 124m" by default); WHEELS (.whl)
#   and SITE (/tmp/site): where the wheels are and where they are installed.
# Without a GPU (CPU=1) it runs the same steps with the benchmark's --dry-run: a rehearsal of the kit.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
PY=${PY:-python3}
PARTS=${PARTS:-tests 1b 124m}
for part in $PARTS; do
  case "$part" in tests|1b|124m) ;; *) echo "gpu_checks: PARTS: unknown part '$part' (known: tests 1b 124m)" >&2; exit 2 ;; esac
done
WHEELS=${WHEELS:-.whl}  # made by wheels.sh; none: the Python at $PY has what is needed
SITE=${SITE:-/tmp/site}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
    || { echo "gpu_checks: installing $WHEELS/ failed" >&2; exit 1; }
fi
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DRY=()
[ "${CPU:-0}" = 1 ] && DRY=(--dry-run)

{
  date -u; nvidia-smi 2>&1 || echo "no nvidia-smi"
  "$PY" - <<'PYEOF'
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
for name in ("triton", "torchao", "orjson", "zstandard", "tomli_w", "pretrain"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), getattr(m, "__file__", ""))
    except Exception as exc:  # noqa: BLE001 - a report of what is there
        print(name, "MISSING:", type(exc).__name__, exc)
PYEOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

rc=0
if [[ " $PARTS " == *" tests "* ]]; then
  # The files holding gpu-marked tests (the skip-policy test only names the marker in a string).
  mapfile -t FILES < <(grep -rl --include='test_*.py' -e 'pytest.mark.gpu' tests | grep -vx 'tests/test_ci_skip_policy.py' | sort)
  echo "== pytest -m gpu: ${FILES[*]}"
  timeout "${TEST_S:-220}" "$PY" -m pytest -q -m gpu -p no:cacheprovider -rA --durations=10 \
    --junitxml="$OUT/gpu_tests.xml" "${FILES[@]}" 2>&1 | tee "$OUT/gpu_tests.log"
  rc=$(( rc | PIPESTATUS[0] ))
fi
if [[ " $PARTS " == *" 1b "* ]]; then
  echo "== 1B rows: bf16 eager, bf16 compiled per block, FP8 compiled"
  timeout "${B1_S:-180}" "$PY" benchmarks/gpu_train.py "${DRY[@]}" --models llama-1b --compile --no-long-context \
    --steps 15 --warmup 4 --time-limit "${B1_ROWS_S:-100}" --json "$OUT/train_1b.json" 2>&1 | tee "$OUT/train_1b.log"
  rc=$(( rc | PIPESTATUS[0] ))
fi
if [[ " $PARTS " == *" 124m "* ]]; then
  echo "== 124M rows and long context (T = 8192, 32768, document-masked)"
  timeout "${B2_S:-150}" "$PY" benchmarks/gpu_train.py "${DRY[@]}" --models gpt2-124m \
    --steps 15 --warmup 4 --time-limit "${B2_ROWS_S:-80}" --json "$OUT/train_124m.json" 2>&1 | tee "$OUT/train_124m.log"
  rc=$(( rc | PIPESTATUS[0] ))
fi
echo "gpu_checks: done, status $rc"
exit "$rc"
