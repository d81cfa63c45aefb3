"""A search killed at each stage (SIGKILL in the latency table, mid-epoch in the supernet, between trials, in
retraining; SIGINT between trials), moved with `mv`, then resumed: nothing done is lost or done twice, and the
results equal those of a run that was never stopped."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
import yaml
from study_helpers import complete_trials

from nas.search.runner import SearchRun
from nas.search.study import counts_as_done
from nas.spec.sections import load_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TABLE = "cpu-t1-b1-float32.json"
TRIALS = 40




def _table_entries(run_dir) -> dict:
    try:
        with open(os.path.join(run_dir, "latency", TABLE)) as f:
            return json.load(f)["entries"]
    except (OSError, ValueError, KeyError):
        return {}


def _stop_when(target: str, ready, sig=signal.SIGKILL, timeout=120.0) -> subprocess.CompletedProcess:
    """Run `nas search TARGET` (a spec file, or a run folder with --resume) in a child; send `sig` once `ready()`."""
    argv = [sys.executable, "-m", "nas.cli", "search", target, "--quiet"]
    if os.path.isdir(target):
        argv.append("--resume")
    env = {**os.environ, "PYTHONPATH": REPO, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}  # as this process
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"the search ended before it could be stopped:\n{proc.stderr.read()}"
        assert time.time() - t0 < timeout, "the search made no progress"
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    return subprocess.CompletedProcess(argv, proc.returncode, "", err)


def _trials(run_dir, name="tiny"):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir}/study.db")
    return study.trials


def _done(run_dir) -> dict:
    """Trial number -> (arch, values) of the trials that count as done."""
    return {t.number: (t.user_attrs["arch"], t.values) for t in _trials(run_dir) if counts_as_done(t)}


@pytest.mark.slow
def test_killed_at_every_stage_moved_and_resumed_equals_an_uninterrupted_run(tiny_spec, tmp_path):
    tiny_spec["supernet"]["epochs"] = 3
    # trials are cheap (a few ms each): many of them keep step 4's window (a trial done, the search not yet over)
    # open for seconds, so a busy machine cannot let the search finish before the signal lands
    tiny_spec["search"]["trials"] = TRIALS
    tiny_spec["retrain"] = {"top_k": 1, "epochs": 2}
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    first = tiny_spec["run_dir"]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec))

    # 1. SIGKILL while the latency table is measured (saved every 20 entries): the entries saved are kept
    _stop_when(str(spec_file), lambda: len(_table_entries(first)) >= 20)
    saved = _table_entries(first)
    assert saved and not os.path.exists(os.path.join(first, "supernet"))

    # 2. SIGKILL mid-epoch 2 of the supernet; resumed through the folder (`nas search RUN --resume`)
    ck = os.path.join(first, "supernet", "checkpoint.pt")
    _stop_when(first, lambda: os.path.exists(ck))
    table = _table_entries(first)
    assert {k: table[k] for k in saved} == saved  # not measured again
    assert torch.load(ck, weights_only=True)["epoch"] in (1, 2)

    # 3. SIGKILL between trials (the trial then running stays RUNNING in the study and is run again)
    _stop_when(first, lambda: complete_trials(first) >= 2)
    assert torch.load(ck, weights_only=True)["epoch"] == 3
    killed = _done(first)

    # 4. the folder is moved; SIGINT between trials: one line, no traceback, resumable
    moved = str(tmp_path / "moved")
    shutil.move(first, moved)
    out = _stop_when(moved, lambda: complete_trials(moved) >= len(killed) + 1, sig=signal.SIGINT)
    assert out.returncode == 130 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "interrupted; the run folder is resumable with --resume"
    interrupted = _done(moved)
    assert all(interrupted[n] == killed[n] for n in killed)

    # 5. SIGKILL in retraining, after its first epoch
    _stop_when(moved, lambda: bool(glob.glob(os.path.join(moved, "retrain", "*", "checkpoint.pt"))))
    assert not os.path.exists(os.path.join(moved, "summary.json"))

    # 6. resumed to the end in this process (the moved folder's spec, run_dir where it lies now)
    spec = load_spec(os.path.join(moved, "spec.yaml"))
    spec.run_dir = moved
    summary = SearchRun(spec, resume=True).run()
    done = _done(moved)
    assert len(done) == TRIALS == summary["complete"]  # as requested: the interrupted trials are not counted twice
    assert all(done[n] == interrupted[n] for n in interrupted)

    # a run never stopped, on the same latency table, trains the same supernet, scores the same paths the same
    tiny_spec["run_dir"] = str(tmp_path / "straight")
    tiny_spec["hardware"]["table"] = os.path.join(moved, "latency", TABLE)
    tiny_spec["retrain"]["top_k"] = 0
    SearchRun(load_spec(tiny_spec)).run()
    a = torch.load(os.path.join(moved, "supernet", "checkpoint.pt"), weights_only=True)
    b = torch.load(os.path.join(tiny_spec["run_dir"], "supernet", "checkpoint.pt"), weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    diff = max(float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in b["model"])
    assert diff == 0, diff
    by_arch = {arch: values for arch, values in _done(tiny_spec["run_dir"]).values()}
    shared = [(arch, values) for arch, values in done.values() if arch in by_arch]
    assert len(shared) >= 3 and all(by_arch[arch] == values for arch, values in shared)  # the spread generation
    assert len(summary["retrain"]["archs"]) == 1 and os.path.isfile(os.path.join(moved, "best", "weights.pt"))
