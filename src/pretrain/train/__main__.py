"""``python -m pretrain.train CONFIG [key=value ...]`` = ``pretrain train ...``; the torchrun entry point:

    torchrun --nproc_per_node 2 -m pretrain.train tiny train.distributed=fsdp --run-dir runs/x
"""

import sys

from pretrain.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "train", *sys.argv[1:]]
    main()
