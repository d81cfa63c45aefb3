from nas.search.front import mark_front


def row(trial, arch, acc, ms, ok=True, feasible=True):
    return {"trial": trial, "arch": arch, "accuracy": acc, "latency_ms": ms, "ok": ok, "feasible": feasible,
            "on_front": False}


def test_front_is_the_non_dominated_feasible_rows_each_architecture_once():
    rows = [row(0, "a", 0.90, 2.0), row(1, "b", 0.95, 4.0), row(2, "c", 0.85, 3.0),  # c: dominated by a
            row(3, "a", 0.90, 2.0),                          # a proposed again: served from the cache
            row(4, "d", 0.99, 1.0, feasible=False),          # would dominate everything, but infeasible
            row(5, "e", 0.97, 5.0, ok=False)]
    mark_front(rows, ["accuracy", "latency_ms"], ["maximize", "minimize"])
    assert [r["trial"] for r in rows if r["on_front"]] == [0, 1]


def test_a_supernet_that_ended_near_chance_is_named_before_the_search():
    from nas.search.stages import untrained_warning

    # the all_ops supernet of bench/space_value.py after 20 epochs on digits_distorted (10 classes)
    warning = untrained_warning([{"epoch": 19, "accuracy": 0.136}, {"epoch": 20, "accuracy": 0.126}], 0.1)
    assert warning.startswith("supernet: training accuracy of its paths 0.126 after 20 epochs is near chance (0.100)")
    assert "search.mode: multi_trial" in warning and "\n" not in warning
    assert untrained_warning([{"epoch": 20, "accuracy": 0.875}], 0.1) is None  # the mobile supernet
    assert untrained_warning([{"epoch": 1, "accuracy": 0.11}], 0.1) is None  # a smoke run: too early to judge
    assert untrained_warning([{"epoch": 20, "accuracy": 0.11}], None) is None  # a task without a chance level
    assert untrained_warning([], 0.1) is None
