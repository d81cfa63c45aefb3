"""bench/space_value.py: each search mode makes a valid spec in its own run folder (no training here)."""
import pytest
from bench_helpers import load_bench

from nas.spec.sections import load_spec


@pytest.fixture(scope="module")
def bench():
    return load_bench("space_value")


def test_multi_trial_searches_from_scratch_in_a_folder_of_its_own(bench, tmp_path):
    one_shot = bench.parse_args(["--work", str(tmp_path), "--trials", "30"])
    multi = bench.parse_args(["--work", str(tmp_path), "--trials", "30", "--mode", "multi_trial",
                              "--trial-epochs", "4"])
    a, b = load_spec(bench.search_spec(one_shot, "all_ops")), load_spec(bench.search_spec(multi, "all_ops"))
    assert (a.search.mode, b.search.mode) == ("one_shot", "multi_trial")
    assert b.search.trial_epochs == 4 and a.search.trials == b.search.trials == 30
    assert a.run_dir != b.run_dir and b.run_dir.endswith("search_all_ops_multi_trial_e4")
    assert one_shot.rank_archs == 12 and multi.rank_archs == 0  # no supernet to correlate


def test_an_unknown_mode_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--mode", "one-shot"])
    assert "invalid choice" in capsys.readouterr().err
