"""Run by tests/test_distributed.py in a fresh interpreter: forking a process whose torch thread pools are
already running (as in a long pytest session) can deadlock, so the 2-process launch starts from here."""
import sys

from accelerate import debug_launcher

from test_distributed import _train_in_a_process

if __name__ == "__main__":
    debug_launcher(_train_in_a_process, args=(sys.argv[1],), num_processes=2)
