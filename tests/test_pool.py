"""ingur_lib.pool: jobs on worker processes come back in order, equal to running them here, costliest first,
one torch thread per worker; bad worker counts are named."""
import operator
import sys

import pytest
import torch

from ingur_lib.errors import IngurError
from ingur_lib.pool import default_workers, pack_state, run_jobs, unpack_state


def _threads_and_sum(a, b):
    return torch.get_num_threads(), a + b


def test_serial_runs_in_order_and_reports_each_job():
    seen = []
    assert run_jobs(operator.add, [(1, 2), (3, 4), (5, 6)], 1, on_done=lambda i, r: seen.append((i, r))) == [3, 7, 11]
    assert seen == [(0, 3), (1, 7), (2, 11)]


def test_workers_return_results_in_job_order_with_one_thread_each():
    jobs = [(i, 10 * i) for i in range(5)]
    seen = []
    out = run_jobs(_threads_and_sum, jobs, 2, cost=[1, 5, 2, 4, 3], on_done=lambda i, r: seen.append(i))
    assert out == [(1, 11 * i) for i in range(5)]
    assert sorted(seen) == list(range(5))


def _checkpoint_folder(i):
    from ingur_lib import resume
    return resume.active()


def test_workers_checkpoint_where_the_parent_does(tmp_path, monkeypatch):
    from ingur_lib import resume
    monkeypatch.setattr(resume, "cache_dir", lambda: tmp_path)
    with resume.resumable("ch", "standard") as folder:
        assert run_jobs(_checkpoint_folder, [(0,), (1,)], 2) == [folder, folder]
    assert run_jobs(_checkpoint_folder, [(0,), (1,)], 2) == [None, None]


def test_bad_worker_counts_name_the_fix(monkeypatch):
    with pytest.raises(IngurError, match="at least 1"):
        run_jobs(operator.add, [(1, 2)], 0)
    monkeypatch.setenv("INGUR_WORKERS", "two")
    with pytest.raises(IngurError, match="INGUR_WORKERS"):
        default_workers()
    monkeypatch.setenv("INGUR_WORKERS", "3")
    assert default_workers() == 3


def test_state_crosses_as_bytes():
    m = torch.nn.Linear(3, 2)
    state = unpack_state(pack_state(m))
    assert state.keys() == m.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())


_ORPHAN_PARENT = """
import sys
from ingur_lib.pool import run_jobs
from tests.test_pool import _write_pid_and_sleep
if __name__ == "__main__":
    run_jobs(_write_pid_and_sleep, [(sys.argv[1], i) for i in range(2)], 2)
"""


def _write_pid_and_sleep(folder, i):
    import os
    import time
    with open(os.path.join(folder, f"{i}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_parent_ends_its_workers(tmp_path):
    import subprocess
    import time
    from ingur_lib.paths import repo_root
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_PARENT, str(tmp_path)], cwd=repo_root())
    try:
        for _ in range(300):
            pids = [int(p.read_text()) for p in tmp_path.glob("*.pid") if p.read_text()]
            if len(pids) == 2:
                break
            time.sleep(0.1)
        assert len(pids) == 2, "the workers did not start"
        parent.kill()
        parent.wait()
        for _ in range(100):
            if not any(_alive(p) for p in pids):
                break
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "a worker outlived its killed parent"
    finally:
        parent.kill()
