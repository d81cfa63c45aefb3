"""One study, many processes: a driver (`nas search SPEC`) and two `nas search SPEC --worker` subprocesses on a
journal file, then on a real PostgreSQL server: every trial number runs once, the study ends with exactly the
budget, more than one process ran trials, and the front equals what one process reports for the same trials;
and a multi-trial driver + worker whose pareto pruning ranks both processes' rung records."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
import yaml

from tiny_space import tiny_spec_in
from nas.errors import UserError
from nas.search.front import trial_rows
from nas.search.runner import SearchRun
from nas.search.study import counts_as_done
from nas.spec.sections import load_spec
from nas.storage import open_storage, resolve
from pg_server import postgres_server

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TRIALS = 16
WORKERS = 2


def shared_spec(folder, storage: str) -> dict:
    spec = tiny_spec_in(folder)
    spec["supernet"]["epochs"] = 1
    spec["search"].update({"trials": TRIALS, "population": 4, "storage": storage})
    spec["tracking"]["wandb"]["enabled"] = False
    return spec


def run_driver_and_workers(spec: dict, folder, workers: int = WORKERS
                           ) -> tuple[list[subprocess.Popen], list[subprocess.CompletedProcess]]:
    """`nas search SPEC`, held (SIGSTOP) in its latency stage until `workers` `nas search SPEC --worker` wait for
    it, then all to the end."""
    spec_file = folder / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": REPO, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "nas.cli", "search", str(spec_file), "--quiet"]
    errs = [folder / f"stderr-{i}.txt" for i in range(1 + workers)]

    def start(args, err):
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err.open("w"), text=True)

    def wait_until(ready, procs):
        t0 = time.time()
        while not ready():
            assert all(p.poll() is None for p in procs), [e.read_text() for e in errs]
            assert time.time() - t0 < 240, [e.read_text() for e in errs]
            time.sleep(0.1)

    procs = [start(argv, errs[0])]
    out = []
    try:
        wait_until(lambda: os.path.isdir(os.path.join(spec["run_dir"], "latency")), procs)  # in run(): locked
        procs[0].send_signal(signal.SIGSTOP)
        procs += [start(argv + ["--worker", "--wait", "300"], err) for err in errs[1:]]
        wait_until(lambda: all("worker: waiting for the driver" in e.read_text() for e in errs[1:]), procs[1:])
        procs[0].send_signal(signal.SIGCONT)
        for p, err in zip(procs, errs):
            stdout = p.communicate(timeout=300)[0]
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, err.read_text()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
    for o in out:
        assert o.returncode == 0, o.stderr
    return procs, out


def front_of(rows) -> list[tuple]:
    return sorted((r["trial"], r["arch"], r["accuracy"], r["latency_ms"]) for r in rows if r["on_front"])


def one_process_front(spec: dict, study: optuna.Study, folder) -> list[tuple]:
    """The front one `nas search` process reports when it runs the study's trials (same parameters, same order) on
    the same supernet and latency table, in a study of its own."""
    ref = {**spec, "run_dir": str(folder / "one"), "search": {**spec["search"], "storage": None}}
    for part in ("latency", "supernet"):
        shutil.copytree(os.path.join(spec["run_dir"], part), os.path.join(ref["run_dir"], part))
    loaded = load_spec(ref)
    with open(os.path.join(ref["run_dir"], "spec.yaml"), "w") as f:
        f.write(loaded.to_yaml())
    alone = optuna.create_study(study_name=spec["name"], storage=open_storage(resolve(None, ref["run_dir"])),
                                directions=["maximize", "minimize"])
    for t in sorted(study.trials, key=lambda t: t.number):
        alone.enqueue_trial(t.params)
    summary = SearchRun(loaded, resume=True, progress=False).run()
    return front_of(summary["front"])


def check_shared_run(spec: dict, folder, procs, outputs) -> None:
    url = resolve(spec["search"]["storage"], spec["run_dir"])
    study = optuna.load_study(study_name=spec["name"], storage=open_storage(url))
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(TRIALS))  # each number once, none lost, none beyond the budget
    assert all(counts_as_done(t) for t in study.trials)
    by = Counter(int(t.user_attrs["process"].rsplit(":", 1)[1]) for t in study.trials)
    assert len(by) >= 2, by  # the workers ran trials beside the driver, each the count it reports
    for o, p in zip(outputs[1:], procs[1:]):
        ran = re.search(r"^worker: ran (\d+) trials", o.stdout, re.M)
        assert ran and int(ran.group(1)) == by.get(p.pid, 0), (o.stdout, by)
    with open(os.path.join(spec["run_dir"], "summary.json")) as f:
        summary = json.load(f)
    assert summary["trials"] == TRIALS
    assert not os.path.exists(os.path.join(spec["run_dir"], "trials.open"))
    # the driver's front is the study's, and what one process reports for the same trials
    front = front_of(summary["front"])
    assert front and front == front_of(trial_rows(study, ["accuracy", "latency_ms"], ["maximize", "minimize"]))
    assert front == one_process_front(spec, study, folder)


@pytest.mark.slow
def test_driver_and_two_workers_on_a_journal_file(tmp_path):
    spec = shared_spec(tmp_path, "journal:study.log")  # in the run folder
    procs, outputs = run_driver_and_workers(spec, tmp_path)
    assert os.path.isfile(os.path.join(spec["run_dir"], "study.log"))
    assert not os.path.exists(os.path.join(spec["run_dir"], "study.db"))
    check_shared_run(spec, tmp_path, procs, outputs)


@pytest.mark.slow
def test_driver_and_two_workers_on_postgresql(tmp_path):
    with postgres_server() as url:
        spec = shared_spec(tmp_path, url)
        procs, outputs = run_driver_and_workers(spec, tmp_path)
        check_shared_run(spec, tmp_path, procs, outputs)


def test_unreachable_postgresql_is_one_line_without_password(tmp_path):
    spec = load_spec(shared_spec(tmp_path, "postgresql://nas:secret@127.0.0.1:9/nas"))
    with pytest.raises(UserError, match=r"^search.storage: cannot use postgresql://nas:\*\*\*@127.0.0.1:9/nas "
                                        r"\(.*\); start the database server") as e:
        SearchRun(spec).run()
    assert "secret" not in str(e.value) and "\n" not in str(e.value)


def test_worker_without_a_driver_is_one_line(tmp_path, capsys):
    from nas.cli import main

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(shared_spec(tmp_path, "journal:study.log")))
    assert main(["search", str(spec_file), "--worker", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nas search: error: --worker: no driver runs the search in"), err


def test_worker_with_another_spec_than_the_driver_is_one_line(tmp_path, capsys):
    from nas.cli import main

    spec = shared_spec(tmp_path, "journal:study.log")
    os.makedirs(spec["run_dir"])
    driver = load_spec({**spec, "search": {**spec["search"], "trials": TRIALS + 1}})
    with open(os.path.join(spec["run_dir"], "spec.yaml"), "w") as f:
        f.write(driver.to_yaml())
    open(os.path.join(spec["run_dir"], "trials.open"), "w").close()  # as a driver in its trials leaves it
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert main(["search", str(spec_file), "--worker", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nas search: error: --worker: the spec differs from the driver's ") and \
        err[-1].count("'search.trials'") == 1, err


@pytest.mark.slow
def test_driver_and_a_worker_prune_on_each_others_rungs(tmp_path):
    """Multi-trial with the pareto rule: the rungs live in the study, so each process's decisions rank the other's
    records too (`rung_seen:1`), and each decision is the rule's on exactly those records."""
    from nas.search.multi_trial import ParetoHalving
    from nas.search.rung_history import from_attr

    trials = 10
    spec = tiny_spec_in(tmp_path)
    spec["search"].update({"mode": "multi_trial", "trial_epochs": 2, "trials": trials, "early_stopping": "pareto",
                           "storage": "journal:study.log"})
    spec["tracking"]["wandb"]["enabled"] = False
    procs, _ = run_driver_and_workers(spec, tmp_path, workers=1)

    study = optuna.load_study(study_name=spec["name"], storage=open_storage(resolve("journal:study.log",
                                                                                    spec["run_dir"])))
    assert sorted(t.number for t in study.trials) == list(range(trials)) and all(map(counts_as_done, study.trials))
    pid = {t.number: int(t.user_attrs["process"].rsplit(":", 1)[1]) for t in study.trials}
    assert set(pid.values()) == {procs[0].pid, procs[1].pid}, pid  # both ran trials
    ranked = [t for t in study.trials if "rung:1" in t.user_attrs]  # trained (not a repeat of a finished arch)
    assert ranked and all("rung_seen:1" in t.user_attrs for t in ranked)
    point = {t.number: from_attr(t.user_attrs["rung:1"]) for t in ranked}
    def decide(t, seen) -> bool:
        rule = ParetoHalving(None, max_epochs=2)
        for n in seen:
            rule.record(str(n), 1, point[n])
        return rule.keep("me", 1, point[t.number])

    for t in ranked:  # each decision: the rule on the records it saw (both processes'), the trial's own last
        seen = t.user_attrs["rung_seen:1"]
        assert decide(t, seen) == (t.state != optuna.trial.TrialState.PRUNED), (t.number, t.user_attrs)
    # (whether another process's records turned a decision depends on the order the two finish their rungs in, so it
    # is not asserted: what the records are and that each decision used them is)
    # each process decided on the other's records: a worker's trial saw a driver's, and the other way round
    crossed = {p.pid: any(pid[t.number] == p.pid and any(pid[n] != p.pid for n in t.user_attrs["rung_seen:1"])
                          for t in ranked) for p in procs}
    assert crossed == {procs[0].pid: True, procs[1].pid: True}, crossed
