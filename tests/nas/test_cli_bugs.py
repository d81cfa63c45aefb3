"""User errors print one line; anything else is a bug of ours and prints its traceback, with a line saying so."""
import pytest

from nas import cli
from nas.errors import SearchFailed, UserError
from nas.search.objectives import ArchEvaluator
from search_spaces import load


def _fake_command(exc):
    def run(args):
        raise exc
    return run


@pytest.mark.parametrize("exc, code", [(UserError("data.root: folder 'x' does not exist"), 2),
                                       (SearchFailed("search: none of 3 trials completed"), 1)])
def test_a_user_error_is_one_line(monkeypatch, capsys, exc, code):
    monkeypatch.setattr(cli, "build_parser", lambda: _parser(exc))
    assert cli.main(["boom"]) == code
    err = capsys.readouterr().err
    assert err.strip() == f"nas boom: error: {exc}" and "Traceback" not in err


def test_a_bug_shows_its_traceback_and_says_it_is_one(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", lambda: _parser(ValueError("an internal invariant broke")))
    assert cli.main(["boom"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: an internal invariant broke" in err
    assert "internal error (a bug in convnas, not in your input)" in err


def _parser(exc):
    import argparse

    parser = argparse.ArgumentParser(prog="nas")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("boom").set_defaults(func=_fake_command(exc))
    return parser


def test_a_scorer_that_reports_no_quality_metric_fails_the_run():
    space = load("mobile", input_size=16, in_channels=1, num_classes=10)
    evaluator = ArchEvaluator(lambda arch: {"top5": 0.9}, quality=("accuracy",))
    with pytest.raises(SearchFailed, match=r"reported top5, none of the task's quality metrics \(accuracy\)"):
        evaluator(space.sample(0))
