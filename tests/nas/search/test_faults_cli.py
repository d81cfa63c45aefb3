"""Malformed command lines and corrupted files of each kind (spec, checkpoint, study.db, latency table, weights),
in-process through `nas.cli.main`: exit 2, one line naming the flag or the file, no traceback."""
import os
import subprocess
import sys
import time

import optuna
import pytest
import torch
import yaml

import search_spaces
from nas.cli import main
from nas.errors import UserError
from nas.runlock import RunLock, holder_pid
from nas.search.study import open_study
from nas.spec.sections import load_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GARBAGE = bytes(range(256)) * 8


class Files:
    """Builds the inputs of one case in a temp folder: specs, run folders, broken files."""

    def __init__(self, tmp, spec: dict):
        self.tmp, self.spec = tmp, spec

    def file(self, name: str, data: bytes | str) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)

    def spec_file(self, **changes) -> str:
        return self.file("spec.yaml", yaml.safe_dump({**self.spec, **changes}))

    def arch_string(self) -> str:
        space = search_spaces.load(self.spec["space"]["name"])
        return space.decode({d.key: d.choices[0] for d in space.decisions()}).to_string()

    def run_folder(self, study: bytes | None = None, checkpoint: bytes | None = None) -> str:
        """A search run folder: spec.yaml, study.db (trial 0 holds an arch, or `study` bytes), supernet/ (a
        `checkpoint` given as bytes)."""
        run = self.spec["run_dir"]
        os.makedirs(os.path.join(run, "supernet"), exist_ok=True)
        self.file(os.path.join(run, "spec.yaml"), load_spec(self.spec).to_yaml())
        db = os.path.join(run, "study.db")
        if study is not None:
            self.file(db, study)
        else:
            s = optuna.create_study(study_name=self.spec["name"], storage=f"sqlite:///{db}",
                                    directions=["maximize", "minimize"])
            s.add_trial(optuna.trial.create_trial(values=[0.5, 1.0], params={}, distributions={},
                                                  user_attrs={"arch": self.arch_string(), "metrics": {}}))
        if checkpoint is not None:
            self.file(os.path.join(run, "supernet", "checkpoint.pt"), checkpoint)
        return run

    def torch_file(self, name: str, obj) -> str:
        path = str(self.tmp / name)
        torch.save(obj, path)
        return path


def _half_checkpoint(f: Files) -> bytes:
    path = f.torch_file("full.pt", {"model": {"w": torch.zeros(1000)}, "epoch": 1})
    with open(path, "rb") as fh:
        data = fh.read()
    return data[: len(data) // 2]


# (id, function of Files -> argv, what the one-line error must contain)
CASES = [
    ("spec_missing", lambda f: ["search", str(f.tmp / "nope.yaml")], "nope.yaml' does not exist"),
    ("spec_empty", lambda f: ["search", f.file("e.yaml", "")], "e.yaml' is empty"),
    ("spec_comments_only", lambda f: ["search", f.file("c.yaml", "# name: x\n\n# search: {}\n")], "c.yaml' is empty"),
    ("spec_a_list", lambda f: ["search", f.file("l.yaml", "- a\n- b\n")], "l.yaml: a spec is a mapping"),
    ("spec_bad_yaml", lambda f: ["search", f.file("b.yaml", "search: {trials: [1\n")], "b.yaml: not valid YAML"),
    ("spec_binary", lambda f: ["search", f.file("bin.yaml", GARBAGE)], "bin.yaml: not UTF-8 text"),
    ("set_without_equals", lambda f: ["search", f.spec_file(), "--set", "trials"], "--set trials: expected KEY.PATH=VALUE"),
    ("set_bad_type", lambda f: ["search", f.spec_file(), "--set", "search.trials=many"], "search.trials: expected an integer"),
    ("set_timeout_negative", lambda f: ["search", f.spec_file(), "--set", "search.timeout_s=-5"], "search.timeout_s: -5.0"),
    ("set_into_a_value", lambda f: ["search", f.spec_file(), "--set", "name.x=1"], "--set name.x: 'name' is not a section"),
    ("resume_nothing", lambda f: ["search", f.spec_file(), "--resume"], "--resume: '"),
    ("search_folder_without_spec", lambda f: ["search", str(f.tmp)], "a folder without spec.yaml is not a run folder"),
    ("search_no_spec", lambda f: ["search"], "a spec file is needed"),
    ("search_garbage_latency_table", lambda f: ["search", f.spec_file(), "--quiet"] if f.file(
        os.path.join(f.spec["run_dir"], "latency", "cpu-t1-b1-float32.json"), "{\"entries\": {") else [],
     "cpu-t1-b1-float32.json': not valid JSON"),
    ("search_latency_table_a_list", lambda f: ["search", f.spec_file(), "--quiet"] if f.file(
        os.path.join(f.spec["run_dir"], "latency", "cpu-t1-b1-float32.json"), "[1, 2]") else [],
     "cpu-t1-b1-float32.json': not a latency table"),
    ("train_nproc_zero", lambda f: ["train", f.spec_file(), "--nproc", "0"], "--nproc: 0 is not a process count"),
    ("train_arch_nproc", lambda f: ["train", f.spec_file(), "--arch", f.arch_string(), "--nproc", "2"],
     "--arch trains in one process"),
    ("train_epochs_negative", lambda f: ["train", f.spec_file(), "--set", "supernet.epochs=-1"], "supernet.epochs"),
    ("train_truncated_checkpoint", lambda f: ["train", f.spec_file(), "--resume", "--quiet"] if f.run_folder(
        checkpoint=_half_checkpoint(f)) else [], "checkpoint.pt: not a readable training checkpoint"),
    ("train_checkpoint_not_a_dict", lambda f: ["train", f.spec_file(), "--resume", "--quiet"] if f.run_folder(
        checkpoint=open(f.torch_file("l.pt", [1, 2]), "rb").read()) else [], "checkpoint.pt: not a training checkpoint"),
    ("latency_validate_n_zero", lambda f: ["latency", "validate", "mobile", "--n", "0"], "--n: 0 is too small"),
    ("latency_threads_zero", lambda f: ["latency", "build", "mobile", "--threads", "0"], "--threads: 0 is too small"),
    ("latency_calibrate_negative", lambda f: ["latency", "build", "mobile", "--calibrate", "-1"], "--calibrate: -1"),
    ("latency_table_garbage", lambda f: ["latency", "validate", "mobile", "--out", str(f.tmp)] if f.file(
        "cpu-t1-b1-float32.json", GARBAGE) else [], "cpu-t1-b1-float32.json': not valid JSON"),
    ("latency_table_truncated", lambda f: ["latency", "validate", "mobile", "--out", str(f.tmp)] if f.file(
        "cpu-t1-b1-float32.json", '{"format": 1, "entries": {"a": {"median_ms": 1') else [],
     "cpu-t1-b1-float32.json': not valid JSON"),
    ("latency_table_bad_entry", lambda f: ["latency", "validate", "mobile", "--out", str(f.tmp)] if f.file(
        "cpu-t1-b1-float32.json", '{"entries": {"a": {"ms": 1}}}') else [], "not a latency table"),
    ("export_empty_arch_file", lambda f: ["export", f.file("a.yaml", ""), "--out", str(f.tmp / "m.py")], "a.yaml"),
    ("export_garbage_arch_file", lambda f: ["export", f.file("g.yaml", "stages: [[[\n"), "--out", str(f.tmp / "m.py")],
     "g.yaml"),
    ("export_binary_arch_file", lambda f: ["export", f.file("b.yaml", GARBAGE), "--out", str(f.tmp / "m.py")],
     "b.yaml: not UTF-8 text"),
    ("export_missing_arch_file", lambda f: ["export", "no/such/arch.yaml", "--out", "m.py"], "no/such/arch.yaml"),
    ("export_unknown_preset", lambda f: ["export", "mobilenet_v9", "--out", "m.py"], "mobilenet_v9"),
    ("export_out_not_py", lambda f: ["export", "mobilenet_v2", "--out", "m.txt"], "--out m.txt: expected a .py"),
    ("export_weights_missing", lambda f: ["export", "mobilenet_v2", "--out", "m.py", "--weights", "nope.pt"],
     "--weights nope.pt does not exist"),
    ("export_weights_empty", lambda f: ["export", "mobilenet_v2", "--out", str(f.tmp / "m.py"), "--weights",
                                        f.file("w.pt", b"")], "w.pt: not a readable torch state dict"),
    ("export_weights_text", lambda f: ["export", "mobilenet_v2", "--out", str(f.tmp / "m.py"), "--weights",
                                       f.file("w.pt", "hello")], "w.pt: not a readable torch state dict"),
    ("export_weights_a_list", lambda f: ["export", "mobilenet_v2", "--out", str(f.tmp / "m.py"), "--weights",
                                         f.torch_file("w.pt", [1, 2])], "w.pt: expected a state dict"),
    ("export_weights_of_another_net", lambda f: ["export", "mobilenet_v2", "--out", str(f.tmp / "m.py"), "--weights",
                                                 f.torch_file("w.pt", {"x": torch.zeros(1)})], "do not fit"),
    ("export_run_garbage_study", lambda f: ["export", f.run_folder(study=GARBAGE), "--trial", "0"],
     "study.db: not a readable Optuna study (file is not a database)"),
    ("export_run_empty_study", lambda f: ["export", f.run_folder(study=b""), "--trial", "0"],
     "study.db holds no study named 'tiny'"),
    ("export_run_truncated_checkpoint", lambda f: ["export", f.run_folder(checkpoint=_half_checkpoint(f)),
                                                   "--trial", "0"], "checkpoint.pt: not a readable training checkpoint"),
    ("export_run_no_trial", lambda f: ["export", f.run_folder(), "--trial", "99"], "--trial 99: no such trial"),
    ("export_run_unfinished", lambda f: ["export", f.run_folder()], "summary.json does not exist"),
    ("export_run_with_weights", lambda f: ["export", f.run_folder(), "--weights", "w.pt"], "--weights: not used"),
    ("export_not_a_run", lambda f: ["export", str(f.tmp)], "not a search run folder"),
    ("export_trial_without_run", lambda f: ["export", "mobilenet_v2", "--trial", "1"], "--trial: needs a search run"),
]


@pytest.mark.parametrize("case, argv, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(case, argv, message, tiny_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(argv(Files(tmp_path, tiny_spec)))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert message in err, err


def test_garbage_study_is_one_line_where_the_study_is_opened(tmp_path):
    (tmp_path / "study.db").write_bytes(GARBAGE)
    with pytest.raises(UserError, match=r"study.db: not a readable Optuna study \(file is not a database\); move it "
                                        r"away"):
        open_study(str(tmp_path), "s", ["maximize"], optuna.samplers.RandomSampler())


def test_second_process_on_a_run_folder_gets_the_holders_pid(tiny_spec, tmp_path, capsys):
    """Another process holds RUN/.lock: `nas search` and `nas train` on the folder are refused with its PID; once it
    is SIGKILLed the kernel has released the lock and the folder is usable at once."""
    run = tiny_spec["run_dir"]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from nas.runlock import RunLock; lock = RunLock(sys.argv[1], 'holder')"
                               ".acquire(); print('held', flush=True); time.sleep(60)", run],
        env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        spec = Files(tmp_path, tiny_spec).spec_file()
        for argv in (["search", spec, "--quiet"], ["train", spec, "--quiet"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert f"run folder '{run}' is in use by process {holder.pid} (holder)" in err, err
        assert not os.path.exists(os.path.join(run, "spec.yaml"))  # refused before writing
    finally:
        holder.kill()
        holder.wait()
    assert holder_pid(run) == holder.pid  # the file still names it, but the kernel released its lock
    with RunLock(run, "test"):
        assert holder_pid(run) == os.getpid()


def test_a_run_that_failed_before_its_first_result_reruns_with_a_corrected_spec(tiny_spec):
    from nas.search.runner import SearchRun
    from nas.spec.schema import SpecError

    SearchRun(load_spec(tiny_spec))  # spec.yaml written; say the latency stage then failed: no result yet
    tiny_spec["supernet"]["lr"] = 0.01
    assert SearchRun(load_spec(tiny_spec)).spec.supernet.lr == 0.01  # no --resume needed, spec.yaml replaced
    assert load_spec(os.path.join(tiny_spec["run_dir"], "spec.yaml")).supernet.lr == 0.01
    open(os.path.join(tiny_spec["run_dir"], "study.db"), "w").close()  # a first result: now it holds a run
    with pytest.raises(SpecError, match="already holds a run; pass --resume"):
        SearchRun(load_spec(tiny_spec))


def test_the_divergence_hint_names_what_to_change():
    from nas.training.loop import TrainConfig, divergence_message

    assert divergence_message(float("nan"), 3, TrainConfig(lr=0.5, grad_clip=5.0)).endswith(
        "lower supernet.lr (now 0.5) or lower supernet.grad_clip (now 5)")
    assert divergence_message(float("inf"), 3, TrainConfig(lr=0.5, grad_clip=0)).endswith(
        "lower supernet.lr (now 0.5) or set supernet.grad_clip (e.g. 5.0)")


def test_garbage_study_on_resume_is_refused_before_any_work(tiny_spec):
    from nas.search.runner import SearchRun

    SearchRun(load_spec(tiny_spec))  # spec.yaml written
    with open(os.path.join(tiny_spec["run_dir"], "study.db"), "wb") as f:
        f.write(GARBAGE)
    with pytest.raises(UserError, match=r"study.db: not a readable Optuna study \(file is not a database\)"):
        SearchRun(load_spec(tiny_spec), resume=True)  # was: found after the supernet had trained again
    assert not os.path.exists(os.path.join(tiny_spec["run_dir"], "supernet"))
