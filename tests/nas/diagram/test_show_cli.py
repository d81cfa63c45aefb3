"""`nas show ARCH`: the picture beside the Arch YAML (or in --out), rows printed, latency from --table; bad input is
one line. (`nas show RUN --trial N` is tested on a finished search in tests/nas/search/test_export_run.py.)"""
import random
import xml.etree.ElementTree as ET

import pytest
from diagram_helpers import fake_table

import search_spaces
from nas.cli import main


@pytest.fixture
def arch_yaml(tmp_path):
    arch = search_spaces.load("all_ops").sample(random.Random(2))
    path = tmp_path / "arch.yaml"
    path.write_text(arch.to_yaml())
    return arch, path


def test_show_arch_yaml_writes_svg_and_png_beside_it(arch_yaml, capsys):
    arch, path = arch_yaml
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    svg, png = path.with_suffix(".svg"), path.with_suffix(".png")
    assert f"wrote {svg}\nwrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ET.parse(svg)
    # the text rows: one per layer, the classifier last, parameters only (no table)
    assert "no latency model: parameter shares only" in out
    for layer in arch.layers():
        assert f" {layer.op} " in out
    assert out.count("\nclassifier") == 1 and "MACs" in out


def test_show_with_a_table_shows_latency_shares(arch_yaml, tmp_path, capsys):
    arch, path = arch_yaml
    signature = f"all_ops@{arch.in_channels}x{arch.input_size}"
    table = tmp_path / "table.json"
    fake_table([arch], table, {signature: {"form": "ratio", "scale": {"*": 2.0}}})
    out_dir = tmp_path / "pics"
    assert main(["show", str(path), "--table", str(table), "--out", str(out_dir), "--name", "x", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {out_dir / 'x.svg'}", f"wrote {out_dir / 'x.png'}"]
    svg = (out_dir / "x.svg").read_text()
    assert "predicted latency share" in svg and f"calibration for {signature}" in svg
    # another space's calibration: the plain sum, and the picture says so
    assert main(["show", str(path), "--table", str(table), "--space", "mobile", "--no-png"]) == 0
    out = capsys.readouterr().out
    assert "no calibration for mobile@" in out and "uncalibrated sum" in out and "arch.png" not in out


def test_show_preset_goes_to_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["show", "resnet18", "--quiet", "--no-png"]) == 0
    assert capsys.readouterr().out.strip() == "wrote resnet18.svg"
    assert "basic_residual" in (tmp_path / "resnet18.svg").read_text()


@pytest.mark.parametrize("argv, message", [
    (["missing/arch.yaml"], "missing/arch.yaml does not exist (expected an Arch YAML file or a search run folder)"),
    (["resnet18", "--trial", "2"], "--trial: needs a search run folder; resnet18 is not a folder"),
    (["resnet18", "--table", "nope.json"], "--table nope.json does not exist; build one with `nas latency build`"),
    (["resnt18"], "unknown preset 'resnt18'; did you mean 'resnet18'?"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(["show", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nas show: error: {message}") and err.count("\n") == 1


def test_not_a_run_folder_and_a_table_without_the_arch(tmp_path, arch_yaml, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "not a search run folder (no spec.yaml, study.db" in capsys.readouterr().err
    other = search_spaces.load("mobile").sample(random.Random(0))
    fake_table([other], tmp_path / "t.json")
    assert main(["show", str(arch_yaml[1]), "--table", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas show: error: latency table (cpu-t1-b1-float32) lacks ") and err.count("\n") == 1


def test_help_names_both_forms(capsys):
    with pytest.raises(SystemExit):
        main(["show", "--help"])
    text = capsys.readouterr().out
    assert "--trial N" in text and "--table LATENCY.json" in text and "nas show runs/quickstart --trial 17" in text
