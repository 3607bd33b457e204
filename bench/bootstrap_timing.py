"""Time the vectorised bootstrap on a GoEmotions-test-sized problem (5,427 examples x 28 labels).

    python bench/bootstrap_timing.py [--resamples 1000] [--repeats 5]

Labels are drawn with GoEmotions-like rates (about 1.2 labels per example) and predictions flip a few
percent of the entries; the timing does not depend on the values, only on the shapes. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from emogrid.bootstrap import bootstrap_f1_macro, paired_difference, resample_counts, resampled_f1_macro


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5427)
    parser.add_argument("--labels", type=int, default=28)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
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
    print(
        json.dumps(
            {
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
