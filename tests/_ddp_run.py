"""The training script a user would launch: `torchrun --nproc_per_node 2 tests/_ddp_run.py OUT` or
`accelerate launch --multi_gpu --num_processes 2 tests/_ddp_run.py OUT` (tests/test_distributed.py runs
both on CPU and compares them with one process)."""
import sys

from test_distributed import _train_in_a_process

if __name__ == "__main__":
    _train_in_a_process(sys.argv[1])
