"""Figures over seeds: the mean, the interquartile mean (IQM, Agarwal et al. 2021) and 95 %
percentile-bootstrap confidence intervals, with a fixed resampling seed so that the same
per-seed figures always give the same interval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def iqm(values: Any) -> float:
    """The mean of the middle half: int(n / 4) values cut from each end (scipy's trim_mean(x, 0.25))."""
    return float(_iqm_rows(np.asarray(values, dtype=np.float64)[None, :])[0])


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    x = np.sort(samples, axis=1)
    cut = int(x.shape[1] * 0.25)
    return np.mean(x[:, cut : x.shape[1] - cut], axis=1)


def bootstrap_ci(values: list[float], statistic: str = "mean", level: float = 0.95) -> tuple[float, float]:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = x[rng.integers(0, x.size, size=(RESAMPLES, x.size))]
    stats = samples.mean(axis=1) if statistic == "mean" else _iqm_rows(samples)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return (float(low), float(high))


def aggregate(values: list[float]) -> dict[str, Any]:
    """Mean, IQM and their 95 % bootstrap intervals over the per-seed figures."""
    x = [float(v) for v in values]
    if not x:
        return {"n": 0, "mean": None, "iqm": None, "mean_ci95": None, "iqm_ci95": None}
    return {
        "n": len(x),
        "mean": float(np.mean(x)),
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        "iqm": iqm(x),
        "mean_ci95": list(bootstrap_ci(x, "mean")),
        "iqm_ci95": list(bootstrap_ci(x, "iqm")),
        "min": min(x),
        "max": max(x),
    }


def curve_band(curves: list[list[float | None]]) -> dict[str, list[float | None]]:
    """Per bin over the seeds' curves (None: no episode ended in that bin): mean and 95 % interval."""
    bins = max((len(c) for c in curves), default=0)
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for i in range(bins):
        column = [float(v) for c in curves if i < len(c) and (v := c[i]) is not None]
        if not column:
            mean.append(None)
            low.append(None)
            high.append(None)
            continue
        mean.append(float(np.mean(column)))
        lo, hi = bootstrap_ci(column)
        low.append(lo)
        high.append(hi)
    return {"mean": mean, "low": low, "high": high}
