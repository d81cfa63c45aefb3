import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from nas.cli import main
from nas.cost import format_count
from ops import op_names, op_spec

SMALL = ["--channels", "8", "--size", "16"]  # every op builds and runs fast at this shape


def run(capsys, *argv):
    rc = main(["ops", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_table_lists_every_op_with_columns(capsys):
    rc, out, _ = run(capsys, *SMALL)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["name", "family", "params", "MACs", "output"]
    names = [l.split()[0] for l in lines[2:] if l and not l.startswith(" ") and l.split()[0] in op_names()]
    assert names == op_names()
    conv_row = next(l for l in lines if l.startswith("conv "))
    assert format_count(9 * 8 * 8 * 16 * 16) in conv_row.split()  # 3x3 conv, 8->8, 16x16
    assert "kernel=3{1,3,5,7}" in conv_row


def test_family_filter_and_no_cost(capsys):
    rc, out, _ = run(capsys, "--family", "block", "--no-cost")
    assert rc == 0
    assert "MACs" not in out.splitlines()[0]
    rows = [l.split()[0] for l in out.splitlines()[2:] if l and not l.startswith(("*", " "))]
    assert rows == op_names("block") and "mbconv" in rows and "conv" not in rows


def test_unknown_family_is_one_line(capsys):
    rc, _, err = run(capsys, "--family", "blocks", "--no-cost")
    assert rc == 2 and "did you mean 'block'?" in err and "Traceback" not in err


def test_help_lists_the_registry_families():
    from nas.commands.ops import FAMILY_HELP
    from ops.registry import FAMILIES

    assert FAMILY_HELP.split(", ") == list(FAMILIES)


def test_csv_has_exact_counts(capsys):
    rc, out, _ = run(capsys, *SMALL, "--format", "csv", "--family", "conv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == op_names("conv")
    conv = next(r for r in rows if r["name"] == "conv")
    assert int(conv["macs"]) == 9 * 8 * 8 * 16 * 16
    assert conv["output_shape"] == "1x8x16x16" and conv["error"] == ""


def test_json_rows_and_unbuildable_op_shows_reason(capsys):
    # stride 2 with a shape-preserving plug-in (se) cannot be built: the row says why, nothing crashes
    rc, out, _ = run(capsys, *SMALL, "--stride", "2", "--format", "json")
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows) == op_names()
    assert rows["se"]["error"] and rows["se"]["macs"] is None
    assert rows["conv"]["error"] is None and rows["conv"]["output_shape"] == [1, 8, 8, 8]
    assert rows["conv"]["hparams"][0]["name"] == "kernel"
    for name in op_names("upsample"):  # built at stride 1 whatever --stride says
        assert rows[name]["shape"]["stride"] == 1


def test_table_shows_reason_in_place_of_cost(capsys):
    rc, out, _ = run(capsys, *SMALL, "--stride", "2", "--family", "plugin")
    assert rc == 0
    assert "cannot build here: op 'se'" in out


def test_one_op_in_full(capsys):
    rc, out, _ = run(capsys, "--op", "mbconv", *SMALL, "--set", "kernel=5")
    assert rc == 0
    assert out.startswith("mbconv  (block;")
    assert op_spec("mbconv").description in out
    for h in op_spec("mbconv").hparams:
        assert h.name in out
    assert "kernel=5" in out and "MACs" in out


def test_unknown_op_prints_close_matches(capsys):
    rc, out, err = run(capsys, "--op", "mbconvv")
    assert rc == 2
    assert err.strip().startswith("nas ops: error: unknown op 'mbconvv'; did you mean 'mbconv'")
    assert "Traceback" not in err


def test_help_via_console_script():
    nas = Path(sys.executable).with_name("nas")  # .venv/bin/nas, installed by `make setup`
    assert nas.exists(), f"console script missing: {nas}"
    p = subprocess.run([str(nas), "ops", "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for option in ("--op", "--family", "--channels", "--size", "--stride", "--format", "examples:"):
        assert option in p.stdout
