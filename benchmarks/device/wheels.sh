#!/usr/bin/env bash
# Run HERE (a machine with PyPI), from the repo root, before a device lease: downloads into .whl/ the
# wheels that the lent GPU machine's image lacks (it has torch, numpy, pyarrow, tokenizers, safetensors,
# pytest ... but none of these) for its Python 3.12 on x86-64. .whl/ is git-ignored and travels with
# `carry: [".whl"]`; gpu_checks.sh installs it there. About 15 MB.
#   torchao 0.18: float8 training (train.fp8); it is the release built for torch 2.11, the device's torch.
set -euo pipefail
cd "$(dirname "$0")/../.."
WANT=(torchao==0.18.0 orjson==3.11.5 zstandard==0.25.0 tomli-w==1.2.0)
PLAT=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLAT+=(--platform "$p"); done
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLAT[@]}" -d .whl "${WANT[@]}"
ls -la .whl
du -sh .whl
