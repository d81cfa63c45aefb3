"""Pareto utilities over minimisation vectors: non-dominated set and sorting, crowding distance, hypervolume,
knee point."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def to_minimisation(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """Objective vectors with maximised objectives negated, so that smaller is better everywhere."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return np.asarray(values, dtype=float).reshape(-1, len(directions)) * sign


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (duplicates all kept)."""
    points = np.asarray(points, dtype=float)
    keep = []
    for i, p in enumerate(points):
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i):
            keep.append(i)
    return np.array(keep, dtype=int)


def non_dominated_sort(points: np.ndarray) -> list[np.ndarray]:
    """NSGA-II's fronts: indices of the non-dominated points, then of those only the first front dominates, ..."""
    points = np.asarray(points, dtype=float)
    left = np.arange(len(points))
    fronts = []
    while len(left):
        first = left[non_dominated(points[left])]
        fronts.append(first)
        left = np.setdiff1d(left, first)
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front: infinite at each objective's extremes, else the sum
    over objectives of the gap between its neighbours, normalised by the objective's range."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for m in range(points.shape[1]):
        order = np.argsort(points[:, m], kind="stable")
        lo, hi = points[order[0], m], points[order[-1], m]
        dist[order[0]] = dist[order[-1]] = np.inf
        if hi > lo:
            dist[order[1:-1]] += (points[order[2:], m] - points[order[:-2], m]) / (hi - lo)
    return dist


def pareto_rank(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's front (0: non-dominated) and its crowding distance within that front."""
    points = np.asarray(points, dtype=float)
    front, crowd = np.zeros(len(points), dtype=int), np.zeros(len(points))
    for f, idx in enumerate(non_dominated_sort(points)):
        front[idx], crowd[idx] = f, crowding_distance(points[idx])
    return front, crowd


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """Volume dominated by `points` and bounded by `reference` (minimisation; exact, by slicing)."""
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[non_dominated(pts)]
    if pts.shape[1] == 1:
        return float(ref[0] - pts[:, 0].min())
    order = np.argsort(pts[:, 0])
    pts = pts[order]
    volume = 0.0
    for i, p in enumerate(pts):  # slice along the first objective
        upper = pts[i + 1, 0] if i + 1 < len(pts) else ref[0]
        if upper > p[0]:
            volume += (upper - p[0]) * hypervolume(pts[: i + 1, 1:], ref[1:])
    return float(volume)


def knee_point(front: np.ndarray) -> int:
    """Index (into `front`) of the knee: farthest from the line through the extremes after normalising."""
    front = np.asarray(front, dtype=float)
    if len(front) <= 2:
        return int(np.argmin(front.sum(axis=1))) if len(front) else -1
    lo, hi = front.min(axis=0), front.max(axis=0)
    norm = (front - lo) / np.where(hi > lo, hi - lo, 1.0)
    if front.shape[1] != 2:
        return int(np.argmin(np.linalg.norm(norm, axis=1)))  # closest to the utopia point
    a, b = norm[np.argmin(norm[:, 0])], norm[np.argmin(norm[:, 1])]
    line = b - a
    length = np.linalg.norm(line)
    if length == 0:
        return int(np.argmin(norm.sum(axis=1)))
    # signed distance below the chord: the knee bulges towards the utopia point
    dist = (line[0] * (norm[:, 1] - a[1]) - line[1] * (norm[:, 0] - a[0])) / length
    return int(np.argmax(np.abs(dist)))
