"""Pareto fronts: which models no other model beats on both of two axes.

A model is on the front of (cost, accuracy) when no other model costs no more and scores at least as well,
with one of the two strictly better (it is not *dominated*). The front is what a designer chooses from: every
model off it has a rival that is cheaper and no worse, or better and no dearer. Costs here are stored bytes,
operations and latency, all lower-is-better; accuracy is higher-is-better.
"""
from __future__ import annotations

from typing import Mapping


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(cost, score) `a` dominates `b`: no dearer, no worse, and strictly better on one axis."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The names of the non-dominated points of {name: (cost, score)}, cheapest first."""
    on = [n for n, p in points.items() if not any(dominates(q, p) for m, q in points.items() if m != n)]
    return sorted(on, key=lambda n: (points[n][0], -points[n][1]))
