"""Time the vectorised bootstrap on a GoEmotions-test-sized problem (5,427 examples x 28 labels).

    python bench/bootstrap_timing.py [--resamples 1000] [--repeats 5] [--grid]

Labels are drawn with GoEmotions-like rates (about 1.2 labels per example) and predictions flip a few
percent of the entries; the timing does not depend on the values, only on the shapes. Prints JSON.

--grid also times the statistics of a grid the size of the real one (18 cells x 3 seeds; test splits of
5,427 / 3,259 / 768 / 2,610 rows; 28 labels, 7 Ekman and 4 sentiment groups; both threshold modes),
from decisions in memory: `bootstrap_grid` + `paired_comparisons`, without reading parquet files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from emogrid.bootstrap import bootstrap_f1_macro, paired_difference, resample_counts, resampled_f1_macro
from emogrid.significance import THRESHOLD_MODES, _Scores, bootstrap_grid, paired_comparisons

REAL_TEST_ROWS = {"goemotions": 5427, "semeval2018_ec": 3259, "isear": 768, "meld": 2610}
REAL_LEVELS = {"labels": 28, "ekman": 7, "sentiment": 4}
REAL_CELLS = [
    (loss, mix, imbalance)
    for loss in ("bce", "asl", "combined")
    for mix in ("goemotions", "all4")
    for imbalance in ("none", "oversample", "pos_weight")
]


def time_real_grid(resamples: int, seeds: int = 3) -> dict:
    rng = np.random.default_rng(1)
    scores = {}
    for dataset, n in REAL_TEST_ROWS.items():
        for level, k in REAL_LEVELS.items():
            truth = rng.random((n, k)) < 1.2 / k
            ids = np.array([f"{dataset}-{i}" for i in range(n)])
            entry = _Scores(ids, truth)
            for cell in REAL_CELLS:
                for _ in range(seeds):
                    flips = {mode: truth ^ (rng.random(truth.shape) < 0.03) for mode in THRESHOLD_MODES}
                    entry.add(cell, ids, truth, flips, "bench")
            scores[(dataset, level)] = entry
    start = time.perf_counter()
    _, resampled = bootstrap_grid(scores, resamples, 0, 0.95)
    intervals_s = time.perf_counter() - start
    start = time.perf_counter()
    paired = paired_comparisons(resampled, 0.95, "normal", 0.05)
    return {
        "cells": len(REAL_CELLS),
        "seeds": seeds,
        "intervals_seconds": round(intervals_s, 2),
        "paired_seconds": round(time.perf_counter() - start, 2),
        "comparisons": len(paired),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5427)
    parser.add_argument("--labels", type=int, default=28)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", action="store_true", help="also time a real-sized grid")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    truth = rng.random((args.examples, args.labels)) < 1.2 / args.labels
    first = truth ^ (rng.random(truth.shape) < 0.03)
    second = truth ^ (rng.random(truth.shape) < 0.04)

    def timed(function) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    interval_s = timed(lambda: bootstrap_f1_macro(truth, [first], args.resamples, seed=0))
    weights = resample_counts(args.examples, args.resamples, seed=0)
    resample_s = timed(lambda: resample_counts(args.examples, args.resamples, seed=0))
    score_s = timed(lambda: resampled_f1_macro(weights, truth, [first]))
    a, b = resampled_f1_macro(weights, truth, [first]), resampled_f1_macro(weights, truth, [second])
    paired_s = timed(lambda: paired_difference(a, b, 0.0, 0.0))
    grid = time_real_grid(args.resamples) if args.grid else None
    print(
        json.dumps(
            {
                "real_sized_grid": grid,
                "shape": [args.examples, args.labels],
                "resamples": args.resamples,
                "median_of": args.repeats,
                "interval_seconds": round(interval_s, 4),
                "draw_resamples_seconds": round(resample_s, 4),
                "score_one_prediction_set_seconds": round(score_s, 4),
                "paired_test_given_resampled_scores_seconds": round(paired_s, 6),
                "machine": {
                    "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "numpy": np.__version__,
                    "load_average": os.getloadavg(),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
