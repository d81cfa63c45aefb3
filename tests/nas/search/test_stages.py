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
