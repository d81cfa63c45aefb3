import json
import os

import pytest

from nas.latency.profile import DeviceProfile
from nas.latency.table import ForeignTableError, LatencyTable, MissingEntriesError, table_path
from nas.latency.units import arch_units, layer_units, op_unit, space_units
from search_spaces import Layer


def test_units_are_deduplicated_and_cover_every_arch(tiny):
    units = space_units(tiny)
    keys = [u.key() for u in units]
    assert len(keys) == len(set(keys))
    covered = set(keys)
    for seed in range(40):
        assert {u.key() for u in arch_units(tiny.sample(seed))} <= covered
    # layer 1 of the stage is (w, w) at 4x4 whatever the depth: one entry per variant and width
    assert sum(1 for u in units if u.op == "dw_separable" and u.size == 4 and u.stride == 1) == 2
    # blurpool: the op at stride 1 plus a blurpool entry
    assert any(u.op == "blurpool" and u.stride == 2 for u in units)


def test_defaults_do_not_split_entries():
    assert op_unit("mbconv", {}, 8, 8, 1, 8) == op_unit("mbconv", {"kernel": 3}, 8, 8, 1, 8)
    units, c, size = layer_units(Layer("mbconv", 16, 2, {"expand": 3}, (Layer("se", 16),), "blurpool"), 8, 8)
    assert [u.op for u in units] == ["mbconv", "blurpool", "se"] and (c, size) == (16, 4)
    assert [u.stride for u in units] == [1, 2, 1] and [u.size for u in units] == [8, 8, 4]


def test_incremental_build_measures_only_missing(tiny, fast, fake_clock, tmp_path):
    table = LatencyTable.open(str(tmp_path), fast)
    units = space_units(tiny)
    assert table.build(units, progress=False) == len(units)
    measured = sum(n - 1 for n in fake_clock)  # one reference module per batch
    assert measured == len(units)
    fake_clock.clear()
    again = LatencyTable.open(str(tmp_path), fast)
    assert len(again) == len(units)
    assert again.build(units, progress=False) == 0 and fake_clock == []


def test_saved_every_n_entries_so_an_interrupt_loses_little(tiny, fast, fake_clock, tmp_path, monkeypatch):
    from nas.latency import measure as measure_mod

    real = measure_mod.measure_rounds

    def flaky(items, profile, rounds=6):
        if len(fake_clock) >= 3:
            raise KeyboardInterrupt
        return real(items, profile, rounds)

    monkeypatch.setattr(measure_mod, "measure_rounds", flaky)
    table = LatencyTable.open(str(tmp_path), fast)
    with pytest.raises(KeyboardInterrupt):
        table.build(space_units(tiny), save_every=4, chunk=2, progress=False)
    saved = LatencyTable.load(table_path(str(tmp_path), fast))
    assert len(saved) == 6  # three chunks of two, all saved


def test_json_round_trip(tiny, fast, fake_clock, tmp_path):
    table = LatencyTable.open(str(tmp_path), fast)
    table.build(space_units(tiny), progress=False)
    table.calibrations["tiny@3x8"] = {"form": "ratio", "scale": {"*": 1.5}}
    table.save()
    back = LatencyTable.load(table.path, fast)
    assert back.entries == table.entries and back.calibrations == table.calibrations
    assert back.reference_ms == table.reference_ms and back.fingerprint == table.fingerprint
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # written atomically


def test_foreign_machine_is_refused(tiny, fast, fake_clock, tmp_path):
    table = LatencyTable.open(str(tmp_path), fast)
    table.build(space_units(tiny)[:3], progress=False)
    with open(table.path) as f:
        d = json.load(f)
    d["fingerprint"]["cpu"] = "Some Other CPU 9000"
    with open(table.path, "w") as f:
        json.dump(d, f)
    with pytest.raises(ForeignTableError) as e:
        LatencyTable.load(table.path, fast)
    msg = str(e.value)
    assert "\n" not in msg and "another machine" in msg and "Some Other CPU 9000" in msg
    assert len(LatencyTable.load(table.path, fast, allow_foreign=True)) == 3


def test_other_profile_is_refused(tiny, fast, fake_clock, tmp_path):
    table = LatencyTable.open(str(tmp_path), fast)
    table.build(space_units(tiny)[:2], progress=False)
    with pytest.raises(ValueError, match="measured for profile cpu-t1-b1-float32, not cpu-t2"):
        LatencyTable.load(table.path, DeviceProfile(threads=2))


def test_missing_entries_name_the_fix(tiny, fast):
    table = LatencyTable(fast)
    with pytest.raises(MissingEntriesError, match="run `nas latency build"):
        table.lookup(arch_units(tiny.sample(0)))
