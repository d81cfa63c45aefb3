"""Loading shipped spaces and files, overrides, and what the loaded space reports."""
import pytest

import search_spaces
from search_spaces import SearchSpace, SpaceError

SHIPPED = {"mobile", "all_ops", "resnet", "dense_prediction"}


def test_shipped_names():
    assert SHIPPED <= set(search_spaces.shipped_spaces())


def test_load_each_shipped_space(spaces, space_name):
    space = spaces[space_name]
    assert isinstance(space, SearchSpace) and space.name == space_name
    assert space.decisions() and space.positions() and space.size() > 1
    keys = [d.key for d in space.decisions()]
    assert len(keys) == len(set(keys))
    assert all(len(d.choices) > 1 and len(set(d.choices)) == len(d.choices) for d in space.decisions())
    assert space.sample(0).space == space_name


def test_missing_space_lists_shipped_names():
    with pytest.raises(SpaceError) as e:
        search_spaces.load("mobil")
    msg = str(e.value)
    assert "\n" not in msg and "did you mean 'mobile'" in msg
    assert all(name in msg for name in SHIPPED)


def test_load_from_path_and_mapping(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("input: {channels: 1, size: 8}\nstages:\n  - {depth: [1, 2], width: 8, ops: [conv, skip]}\n")
    space = search_spaces.load(str(path))
    assert space.name == "tiny" and space.in_channels == 1 and space.input_size == 8
    assert [d.key for d in space.decisions()] == ["s0.depth", "s0.l0.op", "s0.l1.op"]
    same = search_spaces.load({"name": "tiny", "input": {"channels": 1, "size": 8},
                               "stages": [{"depth": [1, 2], "width": 8, "ops": ["conv", "skip"]}]})
    assert same.decisions() == space.decisions()


def test_overrides_aliases_and_paths():
    space = search_spaces.load("mobile", input_size=64, in_channels=3, num_classes=100,
                               **{"stages.0.depth": [1, 2], "classifier": {"dropout": 0.2}})
    assert (space.input_size, space.in_channels, space.num_classes) == (64, 3, 100)
    assert dict((d.key, d.choices) for d in space.decisions())["s0.depth"] == (1, 2)
    arch = space.sample(1)
    assert (arch.input_size, arch.in_channels, arch.num_classes) == (64, 3, 100)
    assert arch.classifier.dropout == 0.2
    assert space.positions()[0].input_size == 64
    again = search_spaces.load(space, num_classes=7)  # a loaded space re-loads with more overrides
    assert again.num_classes == 7 and again.input_size == 64


def test_override_of_a_missing_index_is_one_line():
    with pytest.raises(SpaceError, match=r"^override stages\[9\]\.depth: 'stages\.9' is not an index"):
        search_spaces.load("mobile", **{"stages[9].depth": 2})
