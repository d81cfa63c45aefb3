import numpy as np

from nas.search.pareto import hypervolume, knee_point, non_dominated, to_minimisation


def test_non_dominated_on_hand_example():
    pts = np.array([[1, 5], [2, 2], [3, 1], [3, 3], [5, 5], [1, 6]])
    assert sorted(non_dominated(pts).tolist()) == [0, 1, 2]


def test_hypervolume_2d_by_hand():
    # staircase of (1,3), (2,2), (3,1) under reference (4,4): 3 + 2 + 1 = 6 unit squares
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1]]), [4, 4]) == 6.0
    # a dominated point and a point outside the reference change nothing
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]]), [4, 4]) == 6.0


def test_hypervolume_3d_single_box_and_union():
    assert hypervolume(np.array([[0, 0, 0]]), [2, 3, 4]) == 24.0
    # two boxes [0,2]x[1,2]x[0,2] ∪ [1,2]x[0,2]x[0,2]: 4 + 4 - overlap 2 = 6
    assert hypervolume(np.array([[0, 1, 0], [1, 0, 0]]), [2, 2, 2]) == 6.0


def test_maximised_objectives_are_negated():
    m = to_minimisation([[0.9, 3.0]], ["maximize", "minimize"])
    assert m.tolist() == [[-0.9, 3.0]]


def test_knee_is_the_bulge():
    front = np.array([[0, 10], [1, 2], [2, 1.5], [10, 0]])
    assert knee_point(front) == 1
