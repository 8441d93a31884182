"""benchmarks/economics.py's MMLU pre-router parts: the neighbour gain and the subject folds."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def economics() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "economics_for_tests", ROOT / "benchmarks" / "economics.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["economics_for_tests"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _unit(*angles_deg: float) -> NDArray[np.float32]:
    rad = np.radians(np.asarray(angles_deg, dtype=float))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_neighbour_gain_is_the_softmax_weighted_mean_of_the_k_nearest(
    economics: ModuleType,
) -> None:
    # Query at 0°; pool at 10°, 20°, 90°: with k = 2 only the first two count.
    emb = _unit(0, 10, 20, 90)
    groups = np.array(["q", "a", "b", "c"])
    w = np.array([0.0, 1.0, 0.0, 1.0])
    s = np.array([1.0, 0.0, 1.0, 1.0])  # w - s: pool 10° -> +1, 20° -> -1, 90° -> 0
    got = economics.neighbour_gain(
        emb, groups, w, s, np.array([0]), np.array([1, 2, 3]), k=2, temperature=10.0
    )
    e1, e2 = math.exp(10 * math.cos(math.radians(10))), math.exp(10 * math.cos(math.radians(20)))
    assert got[0] == pytest.approx((e1 * 1.0 + e2 * -1.0) / (e1 + e2), rel=1e-5)
    uniform = economics.neighbour_gain(
        emb, groups, w, s, np.array([0]), np.array([1, 2, 3]), k=2, temperature=0.0
    )
    assert uniform[0] == pytest.approx(0.0, abs=1e-9)


def test_neighbour_gain_skips_pool_questions_of_the_query_subject(economics: ModuleType) -> None:
    # The identical pool question shares the query's subject: it must not be a neighbour.
    emb = _unit(0, 0, 30, 60)
    groups = np.array(["law", "law", "maths", "art"])
    w = np.array([0.0, 1.0, 0.0, 0.0])
    s = np.array([0.0, 0.0, 1.0, 1.0])
    got = economics.neighbour_gain(
        emb, groups, w, s, np.array([0]), np.array([1, 2, 3]), k=2, temperature=10.0
    )
    assert got[0] == pytest.approx(-1.0)


def test_group_folds_hold_each_subject_out_whole(economics: ModuleType) -> None:
    groups = [f"s{i % 7}" for i in range(70)]
    for seed in range(3):
        fold = economics._group_folds(groups, 5, seed)
        by_subject = {g: set(fold[[i for i, x in enumerate(groups) if x == g]]) for g in groups}
        assert all(len(f) == 1 for f in by_subject.values())
        assert set(fold.tolist()) == {0, 1, 2, 3, 4}
