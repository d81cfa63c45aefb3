import json
import os

import yaml

from nas.cli import main


def test_build_then_validate_a_space(tiny_path, tmp_path, capsys):
    out = str(tmp_path / "tables")
    args = ["--out", out, "--repeats", "3"]
    assert main(["latency", "build", tiny_path, *args, "--calibrate", "5"]) == 0
    table = os.path.join(out, "cpu-t1-b1-float32.json")
    assert capsys.readouterr().out.strip() == table
    with open(table) as f:
        d = json.load(f)
    assert d["entries"] and "tiny@3x8" in d["calibrations"] and d["fingerprint"]["cpu"]
    assert main(["latency", "build", tiny_path, *args, "--calibrate", "0"]) == 0
    assert "measuring 0 on cpu-t1-b1-float32" in capsys.readouterr().err
    assert main(["latency", "validate", tiny_path, *args, "--n", "3"]) == 0
    text = capsys.readouterr().out
    assert "MAPE" in text and "MACs linear proxy" in text and "3 networks" in text
    assert main(["latency", "validate", tiny_path, *args, "--n", "2", "--repeat"]) == 0
    assert "re-measurement" in capsys.readouterr().out
    files = os.listdir(out)
    assert any(f.endswith(".png") for f in files) and any(f.endswith(".html") for f in files)


def test_build_from_a_spec_goes_to_its_run_folder(tiny_path, tmp_path):
    spec = {"name": "t", "run_dir": str(tmp_path / "run"), "data": {"name": "digits", "input_size": 8},
            "space": {"name": tiny_path}, "hardware": {"threads": 1, "calibration_archs": 3}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["latency", "build", str(path), "--repeats", "2"]) == 0
    with open(tmp_path / "run" / "latency" / "cpu-t1-b1-float32.json") as f:
        d = json.load(f)
    assert list(d["calibrations"]) == ["tiny@1x8"]  # digits: one channel


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["latency", "validate", "mobile", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run `nas latency build mobile" in err
    assert main(["latency", "build", "no_such_space"]) == 2
