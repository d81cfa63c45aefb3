"""Each bad space file gives one line that names the YAML key path and what is allowed."""
import copy

import pytest

import search_spaces
from search_spaces import SpaceError
from search_spaces.schema import did_you_mean

BASE = {"name": "base", "input": {"channels": 3, "size": 16}, "num_classes": 4,
        "stem": [{"op": "conv", "c_out": 16}],
        "stages": [{"depth": [1, 2], "width": [16, 32], "ops": {"conv": {"kernel": [3, 5]}}},
                   {"depth": 2, "width": 48, "stride": 2, "ops": ["conv", "skip"]},
                   {"depth": [1, 2], "width": 48, "stride": 2, "ops": {"mbconv": {"kernel": [3, 5]}}}],
        "head": [{"op": "pointwise", "c_out": 64}]}


def edit(path, value=None, delete=False):
    raw = copy.deepcopy(BASE)
    node = raw
    for p in path[:-1]:
        node = node[p]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


CASES = [
    # (the mapping, the start of the message: key path and problem, what it must also say)
    (edit(["stagess"], []), "space.stagess: unknown key; did you mean 'stages'?", "valid keys: name, description"),
    (edit(["stages", 2, "ops"], {"mbconvv": {}}),
     "space.stages[2].ops.mbconvv: unknown op 'mbconvv'; did you mean 'mbconv'", ""),
    (edit(["stages", 1, "ops"], ["conv", "skp"]), "space.stages[1].ops[1]: unknown op 'skp'; did you mean 'skip'", ""),
    (edit(["stages", 0, "ops"], {"conv": {"kernal": [3]}}),
     "space.stages[0].ops.conv.kernal: op 'conv' has no hparam 'kernal'; did you mean 'kernel'?", "valid: kernel"),
    (edit(["stages", 0, "ops"], {"group_conv": {"groups": [4, 3]}}),
     "space.stages[0].ops.group_conv: op 'group_conv': groups=3 must divide", "(at s0.l0: c_in=16, c_out=16"),
    (edit(["stages", 1, "ops"], ["depthwise"]), "space.stages[1].ops[0]: op 'depthwise': c_out=48 is not an integer "
                                                "multiple of c_in=32", "(at s1.l0: c_in=32, c_out=48, stride 2"),
    (edit(["stages", 0, "depth"], {"min": 4, "max": 2}), "space.stages[0].depth: min depth 4 is above max depth 2", ""),
    (edit(["stages", 0, "depth"], []), "space.stages[0].depth: empty choice list; give at least one depth", ""),
    (edit(["stages", 0, "depth"], [0, 1]), "space.stages[0].depth[0]: expected an integer >= 1, got 0", ""),
    (edit(["stages", 0, "width"], []), "space.stages[0].width: empty choice list; give at least one width", ""),
    (edit(["stages", 0, "ops"], {}), "space.stages[0].ops: empty choice list; give at least one op", ""),
    (edit(["stages", 0, "ops"], {"conv": {"kernel": []}}),
     "space.stages[0].ops.conv.kernel: empty choice list; give at least one value", ""),
    (edit(["stages", 0, "plugins"], []), "space.stages[0].plugins: empty choice list; give at least one plug-in", ""),
    (edit(["stages", 0, "ops"], {"conv": {"kernel": ["three"]}}),
     "space.stages[0].ops.conv.kernel: op 'conv' hparam 'kernel' takes a number, got 'three'", ""),
    (edit(["stages", 0, "ops"], {"conv": {"act": "relux"}}),
     "space.stages[0].ops.conv.act: 'relux' is not allowed for op 'conv' hparam 'act'; valid: relu", ""),
    (edit(["stages", 0, "ops"], {"conv": {"kernel": [3, 3]}}), "space.stages[0].ops.conv.kernel: 3 is listed twice", ""),
    (edit(["stages", 0, "ops"], ["none", "conv"]), "space.stages[0].ops[0]: 'none' is not allowed here", ""),
    (edit(["stages", 0, "downsample"], ["stride", "blurpool"]),
     "space.stages[0].downsample: a stage with stride 1 has no downsampling point; valid: stride", ""),
    (edit(["stages", 1, "downsample"], ["blur"]), "space.stages[1].downsample: 'blur' is not allowed", "valid: stride, blurpool"),
    (edit(["stages", 1, "ops"], None, delete=True), "space.stages[1].ops: missing required key", ""),
    (edit(["stages", 1, "depht"], 2), "space.stages[1].depht: unknown key; did you mean 'depth'?", ""),
    (edit(["stages", 0, "plugins"], ["none", "se", "cbm"]), "space.stages[0].plugins[2]: unknown op 'cbm'", "cbam"),
    (edit(["stem", 0], {"op": "conv", "c_out": 16, "kernal": 3}), "space.stem[0].kernal: unknown key", "kernel"),
    (edit(["stem", 0], {"c_out": 16}), "space.stem[0]: missing key 'op' (one op) or 'ops' (candidates)", ""),
    (edit(["head", 0], {"ops": {"none": {}, "pointwise": {}}, "c_out": 8, "stride": 2}),
     "space.head[0].stride: an optional layer (one with 'none') must have stride 1", ""),
    (edit(["input"], {"channels": 0, "size": 16}), "space.input.channels: expected an integer >= 1, got 0", ""),
    (edit(["decoder"], {"upsample": ["bilinear"]}),
     "space.decoder.upsample: 'bilinear' is not allowed (did you mean 'bilinear_conv'?)", "transposed"),
    (edit(["decoder"], {"stn": ["yes"]}), "space.decoder.stn: expected true/false", ""),
    (edit(["classifier"], {"act": "tanh"}), "space.classifier.act: 'tanh' is not allowed", "valid: relu, relu6"),
    (edit(["filter_invalid"], "yes"), "space.filter_invalid: expected true/false, got 'yes'", ""),
]


@pytest.mark.parametrize("raw,start,also", CASES, ids=[c[1].split(":")[0] + "-" + str(i) for i, c in enumerate(CASES)])
def test_bad_space_is_one_line_with_the_key_path(raw, start, also):
    with pytest.raises(SpaceError) as e:
        search_spaces.load(raw)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(start), msg
    assert also in msg, msg


def test_base_is_valid():
    assert search_spaces.load(BASE).size() > 1


def test_filter_invalid_keeps_candidates_where_they_build():
    raw = edit(["stages", 1, "ops"], ["conv", "depthwise"])
    raw["filter_invalid"] = True
    space = search_spaces.load(raw)
    labels = {p.key: [v.label for v in p.candidates] for p in space.positions()}
    assert labels["s1.l0"] == ["conv"] and labels["s1.l1"] == ["conv", "depthwise"]


def test_filter_invalid_still_rejects_a_candidate_that_builds_nowhere():
    raw = edit(["stages", 0, "ops"], {"conv": {}, "shuffle_v1": {"groups": 3}})
    raw["filter_invalid"] = True
    with pytest.raises(SpaceError, match=r"^space.stages\[0\].ops.shuffle_v1: op 'shuffle_v1': groups=3"):
        search_spaces.load(raw)


def test_invalid_yaml_file_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("stages:\n  - {depth: [1, 2\n")
    with pytest.raises(SpaceError, match=r"broken.yaml: not valid YAML \(line \d+, column \d+\)"):
        search_spaces.load(str(path))


def test_did_you_mean_names_the_closest_or_nothing():
    assert did_you_mean("stagess", ("name", "stages")) == "did you mean 'stages'? "
    assert did_you_mean("blinear", ("bilinear_conv", "transposed"), " ({}?)") == " (bilinear_conv?)"
    assert did_you_mean("zzz", ("name", "stages")) == ""
    with pytest.raises(SpaceError, match=r"^space.zzz: unknown key; valid keys: "):
        search_spaces.load(edit(["zzz"], 1))
