import random

import optuna

import search_spaces
from nas.search.study import suggest_arch
from nas.search.spread import coarse_to_fine, corner_assignment, enqueue_spread, spread_assignments


def mobile():
    return search_spaces.load("mobile", in_channels=1, input_size=16, num_classes=10)


def test_spread_reaches_both_ends_that_uniform_samples_miss():
    space = mobile()
    picks = [space.decode(a) for a in spread_assignments(space, 12, space.params, seed=0)]
    uniform = [space.params(space.sample(random.Random(i))) for i in range(60)]
    costs = [space.params(a) for a in picks]
    assert len(set(picks)) == 12
    assert costs[0] == min(costs) and costs[1] == max(costs)  # the ends first: a search stopped early spans the range
    assert costs[0] < 0.6 * min(uniform) and costs[1] > 1.2 * max(uniform)
    assert costs[0] <= 1.2 * space.params(space.smallest())


def test_spread_is_deterministic_in_seed_and_keeps_to_feasible_archs():
    space = mobile()
    assert spread_assignments(space, 6, space.params, seed=3) == spread_assignments(space, 6, space.params, seed=3)
    assert spread_assignments(space, 6, space.params, seed=3) != spread_assignments(space, 6, space.params, seed=4)
    limit = 300_000
    picks = spread_assignments(space, 6, space.params, seed=0, feasible=lambda a: space.params(a) <= limit)
    costs = [space.params(space.decode(a)) for a in picks]
    assert len(picks) == 6 and max(costs) <= limit and max(costs) > 0.8 * limit


def test_coarse_to_fine_visits_each_index_once_ends_first():
    assert coarse_to_fine(0) == [] and coarse_to_fine(1) == [0] and coarse_to_fine(2) == [0, 1]
    assert coarse_to_fine(5) == [0, 4, 2, 1, 3]
    for n in range(3, 40):
        order = coarse_to_fine(n)
        assert sorted(order) == list(range(n)) and order[:2] == [0, n - 1]


def test_corner_assignments_are_valid_choices():
    space = mobile()
    rng = random.Random(0)
    for _ in range(20):
        a = corner_assignment(space, rng)
        assert all(a[d.key] in d.choices for d in space.decisions())


def test_enqueued_trials_run_first_and_only_in_a_new_study():
    space = mobile()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert enqueue_spread(study, space, 5, space.params, seed=0) == 5
    expected = [space.decode(a) for a in spread_assignments(space, 5, space.params, seed=0)]
    seen = []

    def objective(trial):
        seen.append(suggest_arch(trial, space))
        return float(space.params(seen[-1]))

    study.optimize(objective, n_trials=7)
    assert seen[:5] == expected
    assert seen[5] not in expected  # then the sampler's own proposals
    assert enqueue_spread(study, space, 5, space.params, seed=0) == 0  # resumed: left as it is
