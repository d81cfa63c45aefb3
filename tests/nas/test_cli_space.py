"""`nas space list` and `nas space show`."""
import math

import search_spaces
from nas.supernet.supernet import Supernet
from nas.cli import main


def run(capsys, *argv):
    rc = main(["space", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_names_every_shipped_space(capsys):
    rc, out, _ = run(capsys, "list")
    assert rc == 0
    rows = [line.split()[0] for line in out.splitlines()[1:]]
    assert rows == search_spaces.shipped_spaces()


def test_show_prints_decisions_size_and_extremes(capsys):
    rc, out, _ = run(capsys, "show", "mobile")
    assert rc == 0
    space = search_spaces.load("mobile")
    for d in space.decisions():
        assert f"  {d.key} " in out
    assert f"size: 10^{math.log10(space.size()):.1f}" in out
    small = next(l for l in out.splitlines() if l.startswith("smallest by parameters:"))
    assert "params" in small and "MACs" in small
    assert space.smallest().to_string() in out and space.largest().to_string() in out
    shared = sum(p.numel() for p in Supernet(space).parameters())
    assert f"supernet: {shared:,} shared parameters" in out
    assert shared >= space.params(space.largest())  # mobile: one elastic MBConv weight per position holds them all


def test_show_with_overrides_and_no_cost(capsys):
    rc, out, _ = run(capsys, "show", "resnet", "--set", "input_size=16", "--set", "stages.0.depth=[1]", "--no-cost")
    assert rc == 0
    assert "input 3x16x16" in out and "s0.depth" not in out and "smallest" not in out


def test_show_unknown_space_is_one_line(capsys):
    rc, out, err = run(capsys, "show", "mobil")
    assert rc == 2 and not out
    assert err.strip().count("\n") == 0
    assert "did you mean 'mobile'" in err and "all_ops" in err
