"""The spec's sections: the hardware section shares DeviceProfile's fields; a broken spec file names the line."""
import dataclasses

import pytest

from nas.spec.sections import HardwareSection, load_spec
from nas.latency.profile import _NON_PROFILE_KEYS, DeviceProfile
from nas.latency.stage import profile_of
from nas.spec.schema import SpecError


def names(cls):
    return [f.name for f in dataclasses.fields(cls)]


def test_hardware_section_is_the_profile_fields_then_the_table_keys():
    profile = names(DeviceProfile)
    assert names(HardwareSection)[:len(profile)] == profile
    assert set(names(HardwareSection)[len(profile):]) == _NON_PROFILE_KEYS
    assert profile_of(HardwareSection()) == DeviceProfile()
    spec = load_spec({"hardware": {"kind": "cuda", "threads": 4, "dtype": "float16", "table": "t.json"}})
    assert profile_of(spec.hardware) == DeviceProfile(kind="cuda", threads=4, dtype="float16")
    assert spec.hardware.table == "t.json"


def test_hardware_values_are_checked_when_the_spec_is_loaded():
    with pytest.raises(SpecError, match=r"^hardware\.threads: must be >= 1, got 0$"):
        load_spec({"hardware": {"threads": 0}})  # before any run folder is written, not when the table is built
    with pytest.raises(SpecError, match=r"^hardware\.threads: must be >= 1, got 0$"):
        profile_of({"threads": 0})
    with pytest.raises(SpecError, match=r"^hardware\.kind: 'gpu' is not allowed \(did you mean 'cpu'\?\)"):
        load_spec({"hardware": {"kind": "gpu"}})


def test_invalid_yaml_spec_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("search:\n  trials: [1, 2\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML \(line \d+, column \d+\): "):
        load_spec(str(path))
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="broken.yaml: a spec is a mapping of sections"):
        load_spec(str(path))
    for text in ("", "# only a comment\n"):  # not a silent 100-trial default search
        path.write_text(text)
        with pytest.raises(SpecError, match=r"broken.yaml' is empty \(or only comments\); write at least"):
            load_spec(str(path))
