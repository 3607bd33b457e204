"""emogrid.significance: intervals and paired comparisons over a grid, from real eval reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emogrid import io
from emogrid.evaluate import evaluate_file
from emogrid.report import (
    add_intervals,
    collect_reports,
    plot_paired_differences,
    summarize_metric,
    write_paired_tables,
    write_single_label_tables,
    write_tables,
)
from emogrid.significance import INTERVAL_TABLE_COLUMNS, PAIRED_COLUMNS, grid_statistics

LABELS = ["anger", "annoyance", "joy", "amusement", "neutral"]
GROUPS = {
    "polarity": {"negative": ["anger", "annoyance"], "positive": ["joy", "amusement"], "neutral": ["neutral"]}
}
GRID = {"start": 0.05, "stop": 0.95, "step": 0.05}
SETTINGS = {"resamples": 300, "seed": 0, "confidence": 0.95, "p_value": "normal", "alpha": 0.05}
N = {"validation": 300, "test": 400}


def truth_of(split: str) -> np.ndarray:
    rng = np.random.default_rng(0 if split == "validation" else 1)
    return (rng.random((N[split], len(LABELS))) < 0.25).astype(np.int8)


def predictions(quality: float, seed: int, shuffle: bool = False) -> pd.DataFrame:
    """Probabilities that separate the truth better the higher `quality` is."""
    rng = np.random.default_rng(seed)
    frames = []
    for split in ("validation", "test"):
        truth = truth_of(split)
        probs = np.clip(quality * truth + rng.normal(0.3, 0.2, truth.shape), 0, 1).astype(np.float32)
        frame = pd.DataFrame(
            {
                "dataset": "toy",
                "split": split,
                "id": [f"{split}-{i}" for i in range(len(truth))],
                "probs": list(probs),
                "labels": list(truth),
                "label_mask": [np.ones(len(LABELS), np.int8)] * len(truth),
            }
        )
        frames.append(frame.sample(frac=1.0, random_state=seed) if shuffle else frame)
    return pd.concat(frames, ignore_index=True)


# (loss, mix) -> quality; mix m2 gets the very same predictions as m1 (seeds 1 and 2).
QUALITY = {"good": 0.45, "poor": 0.15}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    cells = []
    for loss, quality in QUALITY.items():
        for mix in ("m1", "m2"):
            for seed in (1, 2):
                folder = root / mix / loss / "none" / f"seed{seed}"
                # m2's rows come in another order: the statistics must align them by id.
                frame = predictions(quality, seed=seed + (10 if loss == "poor" else 0), shuffle=mix == "m2")
                io.write_parquet(folder / "predictions.parquet", frame)
                cell = {"mix": mix, "loss": loss, "imbalance": "none", "seed": seed}
                evaluate_file(
                    folder / "predictions.parquet", folder / "eval_report.json", LABELS, GRID, cell, GROUPS
                )
                cells.append((folder / "predictions.parquet", folder / "eval_report.json"))
    intervals, paired = grid_statistics(cells, LABELS, GROUPS, SETTINGS)
    return {"cells": cells, "intervals": intervals, "paired": paired, "root": root}


def test_interval_table_covers_every_cell_level_and_threshold(grid):
    intervals = grid["intervals"]
    assert list(intervals.columns) == INTERVAL_TABLE_COLUMNS
    assert len(intervals) == 4 * 2 * 2  # cells x levels x threshold modes
    assert set(intervals["level"]) == {"labels", "polarity"} and set(intervals["threshold"]) == {
        "tuned",
        "0.5",
    }
    assert (
        (intervals["ci_low"] <= intervals["estimate"]) & (intervals["estimate"] <= intervals["ci_high"])
    ).all()
    assert (intervals["seeds"] == 2).all() and (intervals["n_examples"] == N["test"]).all()


def test_estimates_are_the_seed_means_of_the_reports(grid):
    reports = collect_reports([report for _, report in grid["cells"]])
    summary = add_intervals(
        summarize_metric(reports, "f1_macro@tuned", levels=None), grid["intervals"], "tuned"
    )
    assert len(summary) == 8
    assert (summary["ci_low"] < summary["mean"]).all() and (summary["mean"] < summary["ci_high"]).all()
    # Same predictions in another row order: the same numbers.
    by_mix = summary.set_index(["loss", "mix", "level"])
    for loss in QUALITY:
        for column in ("mean", "ci_low", "ci_high"):
            assert by_mix.loc[(loss, "m1", "labels"), column] == pytest.approx(
                by_mix.loc[(loss, "m2", "labels"), column]
            )


def test_intervals_from_other_runs_are_refused(grid):
    reports = collect_reports([report for _, report in grid["cells"]])
    summary = summarize_metric(reports, "f1_macro@tuned", levels=None)
    shifted = grid["intervals"].assign(estimate=grid["intervals"]["estimate"] + 0.01)
    with pytest.raises(ValueError, match="other runs"):
        add_intervals(summary, shifted, "tuned")
    # The same means from another number of seeds (as every seed of a collapsed model gives): refused.
    fewer = grid["intervals"].assign(seeds=1)
    with pytest.raises(ValueError, match="other seeds than the eval reports'"):
        add_intervals(summary, fewer, "tuned")


def test_paired_family_difference_and_holm(grid):
    paired = grid["paired"]
    assert list(paired.columns) == PAIRED_COLUMNS
    # loss pairs within each mix (2) + mix pairs within each loss (2); one imbalance strategy: no pairs.
    assert sorted(paired["compared"]) == ["loss", "loss", "mix", "mix"]
    losses = paired[paired["compared"] == "loss"]
    assert (losses["a"] == "good").all() and (losses["difference"] > 0.1).all()
    assert losses["significant"].all() and (losses["ci_low"] > 0).all()
    mixes = paired[paired["compared"] == "mix"]
    assert (mixes["difference"].abs() < 1e-12).all() and (mixes["p_value"] == 1.0).all()
    assert not mixes["significant"].any()
    assert set(mixes["within"]) == {"loss=good, imbalance=none", "loss=poor, imbalance=none"}
    # Holm: each adjusted p at least the raw one, and at most the Bonferroni one.
    assert (paired["p_holm"] >= paired["p_value"] - 1e-15).all()
    assert (paired["p_holm"] <= np.minimum(1, len(paired) * paired["p_value"]) + 1e-15).all()


def test_a_report_that_does_not_match_its_predictions_is_an_error(grid, tmp_path):
    predictions_path, report_path = grid["cells"][0]
    report = io.read_json(report_path)
    report["datasets"]["toy"]["test"]["f1_macro@tuned"] += 0.05
    io.write_json(tmp_path / "eval_report.json", report)
    with pytest.raises(ValueError, match="in the report but"):
        grid_statistics([(predictions_path, tmp_path / "eval_report.json")], LABELS, GROUPS, SETTINGS)


def test_resampling_is_reproducible(grid):
    again = grid_statistics(grid["cells"], LABELS, GROUPS, SETTINGS)
    pd.testing.assert_frame_equal(again[0], grid["intervals"])
    pd.testing.assert_frame_equal(again[1], grid["paired"])


def test_paired_tables_and_plot_are_written(grid, tmp_path):
    paths = write_paired_tables(grid["paired"], tmp_path / "tables" / "paired", 0.95, "normal", 0.05)
    assert "Holm" in paths["md"].read_text() and "<table" in paths["html"].read_text()
    csv = pd.read_csv(paths["csv"])
    assert csv["p_holm"].tolist() == pytest.approx(grid["paired"]["p_holm"].tolist())
    assert not csv["synthetic_data"].any() and "SYNTHETIC" not in paths["md"].read_text()
    dataset = grid["paired"]["dataset"].iloc[0]
    marked = write_paired_tables(
        grid["paired"], tmp_path / "marked", 0.95, "normal", 0.05, synthetic=[dataset]
    )
    csv = pd.read_csv(marked["csv"])
    assert (csv["synthetic_data"] == (csv["dataset"] == dataset)).all()
    assert f"SYNTHETIC DATA: {dataset} is" in marked["html"].read_text()
    plot = tmp_path / "plots" / "paired.png"
    plot_paired_differences(grid["paired"], plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The synthetic dataset's panel says so in its title.
    import emogrid.report as report

    titles = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            report, "_save_png", lambda figure, path: titles.extend(a.get_title() for a in figure.axes)
        )
        plot_paired_differences(grid["paired"], plot, synthetic=[dataset])
    assert f"{dataset} (SYNTHETIC)" in titles and sum("SYNTHETIC" in t for t in titles) == 1


def test_paired_tables_give_each_cells_seed_std_and_mark_significant_rows_below_it(grid, tmp_path):
    from emogrid.report import below_seed_std, paired_seed_std

    reports = collect_reports([report for _, report in grid["cells"]])
    paired = paired_seed_std(grid["paired"], reports)
    test = reports[(reports["metric"] == "f1_macro@tuned") & (reports["split"] == "test")]
    test = test[(test["level"] == "labels") & test["label"].isna()]
    for row in paired.itertuples(index=False):
        cell = dict(part.split("=") for part in row.within.split(", "))
        for side, std in (("a", row.seed_std_a), ("b", row.seed_std_b)):
            cell[row.compared] = getattr(row, side)
            seeds = test[
                (test["loss"] == cell["loss"])
                & (test["mix"] == cell["mix"])
                & (test["dataset"] == row.dataset)
            ]["value"]
            assert len(seeds) == 2 and std == pytest.approx(np.std(seeds, ddof=1))
    # The mixes' identical predictions differ by 0, below any seed std; the losses' by far more.
    larger = np.maximum(paired["seed_std_a"], paired["seed_std_b"])
    assert below_seed_std(paired).tolist() == (paired["difference"].abs() < larger).tolist()
    assert below_seed_std(paired).tolist() == (paired["compared"] == "mix").tolist()
    # Only significant rows below it are marked: here none (the mix rows are not significant).
    shrunk = paired.copy()
    shrunk["difference"] = shrunk[["seed_std_a", "seed_std_b"]].max(axis=1) / 2
    shrunk["significant"] = True
    paths = write_paired_tables(shrunk, tmp_path / "paired", 0.95, "normal", 0.05)
    text = paths["md"].read_text()
    assert text.count("| yes, below seed std |") == len(shrunk)
    paths = write_paired_tables(grid["paired"], tmp_path / "real", 0.95, "normal", 0.05, reports=reports)
    text = paths["md"].read_text()
    assert "seed std a; b" in text and "| yes, below seed std |" not in text
    assert "not training randomness" in text and "one seed here" not in text
    assert {"seed_std_a", "seed_std_b"} <= set(pd.read_csv(paths["csv"]).columns)
    # One seed per cell: no std, and the note says what that leaves unknown.
    first = collect_reports([report for _, report in grid["cells"] if "seed1" in str(report)])
    paths = write_paired_tables(grid["paired"], tmp_path / "one", 0.95, "normal", 0.05, reports=first)
    text = paths["md"].read_text()
    assert "n/a; n/a" in text and "Every cell has one seed here" in text


def test_tables_show_the_interval_beside_mean_and_std(grid, tmp_path):
    reports = collect_reports([report for _, report in grid["cells"]])
    summary = add_intervals(
        summarize_metric(reports, "f1_macro@tuned", levels=None), grid["intervals"], "tuned"
    )
    paths = write_tables(summary, tmp_path / "f1_macro", confidence=0.95)
    csv = pd.read_csv(paths["csv"])
    assert {"ci_low", "ci_high", "level", "imbalance"} <= set(csv.columns)
    markdown = paths["md"].read_text()
    assert "95% bootstrap interval" in markdown and "toy · polarity" in markdown
    row = summary.iloc[0]
    assert f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" in markdown


def test_a_single_cell_grid_has_intervals_and_an_empty_paired_table(grid, tmp_path):
    intervals, paired = grid_statistics(grid["cells"][:1], LABELS, GROUPS, SETTINGS)
    assert len(intervals) == 4 and (intervals["seeds"] == 1).all()
    assert paired.empty and list(paired.columns) == PAIRED_COLUMNS
    paths = write_paired_tables(paired, tmp_path / "paired", 0.95, "normal", 0.05)
    assert "No comparisons" in paths["md"].read_text() and "Holm correction" not in paths["md"].read_text()
    plot_paired_differences(paired, tmp_path / "paired.png")
    assert (tmp_path / "paired.png").stat().st_size > 0


def test_clustered_datasets_resample_whole_clusters_and_name_the_key_when_an_id_does_not_match(tmp_path):
    """40 distinct rows, each written 10 times (a respondent's answers that agree): by rows the bootstrap
    sees 400 independent examples; by whole clusters only 40, and its interval widens to match."""
    rng = np.random.default_rng(4)
    truth_of_split = {
        split: np.repeat((rng.random((40, len(LABELS))) < 0.3).astype(np.int8), 10, axis=0)
        for split in ("validation", "test")
    }
    cells = []
    for seed, quality in ((1, 0.45), (2, 0.25)):
        frames = []
        for split, truth in truth_of_split.items():
            noise = np.repeat(rng.normal(0.3, 0.2, (40, len(LABELS))), 10, axis=0)
            probs = np.clip(quality * truth + noise, 0, 1).astype(np.float32)
            frames.append(
                pd.DataFrame(
                    {
                        "dataset": "toy",
                        "split": split,
                        "id": [f"{split}-r{k}-{j}" for k in range(40) for j in range(10)],
                        "probs": list(probs),
                        "labels": list(truth),
                        "label_mask": [np.ones(len(LABELS), np.int8)] * len(truth),
                    }
                )
            )
        folder = tmp_path / f"seed{seed}"
        io.write_parquet(folder / "predictions.parquet", pd.concat(frames, ignore_index=True))
        cell = {"mix": "m1", "loss": f"loss{seed}", "imbalance": "none", "seed": 1}
        evaluate_file(folder / "predictions.parquet", folder / "eval_report.json", LABELS, GRID, cell)
        cells.append((folder / "predictions.parquet", folder / "eval_report.json"))
    by_rows, paired_rows = grid_statistics(cells, LABELS, None, SETTINGS)
    clustered = {**SETTINGS, "clusters": {"toy": r"test-(r\d+)-\d"}}
    by_clusters, paired_clusters = grid_statistics(cells, LABELS, None, clustered)
    assert (by_rows["n_clusters"] == 400).all() and (by_clusters["n_clusters"] == 40).all()
    np.testing.assert_array_equal(by_rows["estimate"], by_clusters["estimate"])
    width = lambda table: (table["ci_high"] - table["ci_low"]).to_numpy()  # noqa: E731
    assert (width(by_clusters) > 2 * width(by_rows)).all(), (width(by_rows), width(by_clusters))
    assert paired_clusters["p_value"].iloc[0] > paired_rows["p_value"].iloc[0]
    with pytest.raises(ValueError, match=r"evaluation\.statistics\.clusters\.toy.*'test-r0-0'"):
        grid_statistics(cells, LABELS, None, {**SETTINGS, "clusters": {"toy": r"val-(\d+)"}})
    # An optional group that takes no part: named, not a TypeError at the end of the grid.
    with pytest.raises(ValueError, match=r"clusters\.toy.*took no part"):
        grid_statistics(cells, LABELS, None, {**SETTINGS, "clusters": {"toy": r"(x)?test-r\d+-\d"}})
    # null (how an overlay turns a default off) resamples rows, as no entry does.
    off, _ = grid_statistics(cells, LABELS, None, {**SETTINGS, "clusters": {"toy": None}})
    pd.testing.assert_frame_equal(off, by_rows)


def single_label_predictions(quality: float, seed: int) -> pd.DataFrame:
    """A single-label dataset on 3 of the 5 labels (the mask covers those): one true label per row."""
    rng = np.random.default_rng(seed)
    covered = [0, 2, 4]
    mask = np.zeros(len(LABELS), np.int8)
    mask[covered] = 1
    frames = []
    for split in ("validation", "test"):
        classes = np.random.default_rng(5 if split == "test" else 6).choice(3, N[split], p=[0.6, 0.3, 0.1])
        truth = np.zeros((N[split], len(LABELS)), np.int8)
        truth[np.arange(N[split]), np.array(covered)[classes]] = 1
        probs = np.clip(quality * truth + rng.normal(0.3, 0.2, truth.shape), 0, 1).astype(np.float32)
        frames.append(
            pd.DataFrame(
                {
                    "dataset": "single",
                    "split": split,
                    "id": [f"{split}-{i}" for i in range(N[split])],
                    "probs": list(probs),
                    "labels": list(truth * mask),
                    "label_mask": [mask] * N[split],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_single_label_datasets_get_intervals_for_their_argmax_scores(tmp_path):
    """Weighted-F1, accuracy and macro-F1 of the most probable label, each with an interval whose
    estimate is the seed mean of the eval reports' number; a multi-label dataset gets none of them."""
    cells = []
    for loss, quality in QUALITY.items():
        for seed in (1, 2):
            folder = tmp_path / loss / f"seed{seed}"
            frame = pd.concat([single_label_predictions(quality, seed), predictions(quality, seed)])
            io.write_parquet(folder / "predictions.parquet", frame)
            cell = {"mix": "m1", "loss": loss, "imbalance": "none", "seed": seed}
            evaluate_file(folder / "predictions.parquet", folder / "eval_report.json", LABELS, GRID, cell)
            cells.append((folder / "predictions.parquet", folder / "eval_report.json"))
    intervals, paired = grid_statistics(cells, LABELS, None, SETTINGS)
    argmax = intervals[intervals["threshold"] == "argmax"]
    # Rows in a fixed order: per cell and dataset, tuned, then 0.5, then the argmax scores.
    single_rows = intervals[(intervals["dataset"] == "single") & (intervals["loss"] == "good")]
    assert list(single_rows["metric"]) == [
        "f1_macro@tuned",
        "f1_macro@0.5",
        "f1_weighted@argmax",
        "accuracy@argmax",
        "f1_macro@argmax",
    ]
    assert set(argmax["dataset"]) == {"single"}
    assert sorted(argmax["metric"]) == sorted(
        f"{m}@argmax" for m in ("f1_weighted", "accuracy", "f1_macro") for _ in QUALITY
    )
    assert set(intervals.loc[intervals["threshold"] != "argmax", "metric"]) == {
        "f1_macro@tuned",
        "f1_macro@0.5",
    }
    reports = collect_reports([report for _, report in cells])
    for row in argmax.itertuples(index=False):
        values = reports[
            (reports["loss"] == row.loss)
            & (reports["dataset"] == "single")
            & (reports["split"] == "test")
            & (reports["metric"] == row.metric)
        ]["value"]
        assert len(values) == 2 and row.estimate == pytest.approx(values.mean(), abs=1e-12)
        assert row.ci_low < row.estimate < row.ci_high and row.seeds == 2
    # The good loss is better on every argmax score, and the intervals say so.
    by = argmax.set_index(["loss", "metric"])
    for metric in set(argmax["metric"]):
        assert by.loc[("good", metric), "ci_low"] > by.loc[("poor", metric), "ci_high"]
    # The single-label table shows them, in brackets after the seed means, and names the test rows.
    paths = write_single_label_tables(reports, tmp_path / "single", intervals=intervals, confidence=0.95)
    table = pd.read_csv(paths["csv"])
    assert len(table) == 6 and table[["ci_low", "ci_high"]].notna().all().all()
    good_weighted = by.loc[("good", "f1_weighted@argmax")]
    shown = table[(table["loss"] == "good") & (table["level"] == "weighted-F1")].iloc[0]
    assert (shown["ci_low"], shown["ci_high"]) == pytest.approx((good_weighted.ci_low, good_weighted.ci_high))
    text = paths["md"].read_text()
    assert f"[{good_weighted.ci_low:.3f}, {good_weighted.ci_high:.3f}]" in text
    assert "In brackets: 95% bootstrap interval" in text and "No bootstrap intervals" not in text
    # The note's test rows and clustered datasets are this table's only (not the multi-label toy's).
    assert f"Test rows: single {N['test']}." in text and "toy" not in text
    paths = write_single_label_tables(
        reports, tmp_path / "clusters", intervals=intervals, confidence=0.95, clustered=["toy", "single"]
    )
    assert "(single in whole clusters of rows)" in paths["md"].read_text()
    # An interval table from before the argmax intervals (no metric column): the table, without them.
    older_table = intervals[intervals["threshold"] != "argmax"].drop(columns="metric")
    paths = write_single_label_tables(reports, tmp_path / "older", intervals=older_table, confidence=0.95)
    assert "ci_low" not in pd.read_csv(paths["csv"]) and "No bootstrap intervals" in paths["md"].read_text()
    # Only macro-F1 at tuned thresholds is compared in pairs: one comparison per dataset.
    assert len(paired) == 2
    # A report whose argmax score does not come from its predictions is refused, naming the score.
    report = io.read_json(cells[0][1])
    report["datasets"]["single"]["test"]["accuracy@argmax"] += 0.01
    io.write_json(tmp_path / "tampered.json", report)
    with pytest.raises(ValueError, match=r"single/labels test accuracy@argmax .* in the report but"):
        grid_statistics([(cells[0][0], tmp_path / "tampered.json")], LABELS, None, SETTINGS)
    # A report that predates the argmax scores: that seed has no argmax interval, the other seed has.
    for metric in ("f1_weighted", "accuracy", "f1_macro"):
        del report["datasets"]["single"]["test"][f"{metric}@argmax"]
    io.write_json(tmp_path / "older.json", report)
    older, _ = grid_statistics([(cells[0][0], tmp_path / "older.json"), cells[1]], LABELS, None, SETTINGS)
    assert (older.loc[older["threshold"] == "argmax", "seeds"] == 1).all()
    assert (older.loc[older["threshold"] == "tuned", "seeds"] == 2).all()


def test_names_that_look_like_numbers_survive_the_statistics_csvs(tmp_path):
    """Mixes named "0718" and "2019" (the schema allows [A-Za-z0-9_]+): the tables read the bootstrap
    job's CSVs back with the names as written, so every interval and seed std finds its cell."""
    from emogrid.report import paired_seed_std, read_statistics_csv, write_score_tables

    cells = []
    for mix, quality in (("0718", 0.45), ("2019", 0.15)):
        for seed in (1, 2):
            folder = tmp_path / mix / f"seed{seed}"
            io.write_parquet(folder / "predictions.parquet", predictions(quality, seed=seed))
            cell = {"mix": mix, "loss": "bce", "imbalance": "none", "seed": seed}
            evaluate_file(folder / "predictions.parquet", folder / "eval_report.json", LABELS, GRID, cell)
            cells.append((folder / "predictions.parquet", folder / "eval_report.json"))
    intervals, paired = grid_statistics(cells, LABELS, {}, SETTINGS)
    (tmp_path / "intervals.csv").write_text(intervals.to_csv(index=False))
    (tmp_path / "paired.csv").write_text(paired.to_csv(index=False))
    reports = collect_reports([report for _, report in cells])
    # Read back without the name types, the mixes come back as numbers: "0718" is 718 and finds no cell.
    as_numbers = pd.read_csv(tmp_path / "paired.csv")
    assert paired_seed_std(as_numbers, reports)["seed_std_a"].isna().all()
    read_back = read_statistics_csv(tmp_path / "paired.csv")
    assert read_back["a"].tolist() == paired["a"].tolist() == ["0718"]
    assert paired_seed_std(read_back, reports)[["seed_std_a", "seed_std_b"]].notna().all(axis=None)
    prefixes = {key: tmp_path / "tables" / key for key in ("tuned", "0.5", "micro", "single")}
    write_score_tables(reports, read_statistics_csv(tmp_path / "intervals.csv"), prefixes, 0.95, None)
    table = pd.read_csv(prefixes["tuned"].with_suffix(".csv"), dtype={"mix": str})
    assert sorted(table["mix"]) == ["0718", "2019"] and table["ci_low"].notna().all()
    with pytest.raises(ValueError):
        write_score_tables(reports, pd.read_csv(tmp_path / "intervals.csv"), prefixes, 0.95, None)


def test_the_paired_note_says_what_its_intervals_and_mix_rows_do_not_cover(grid, tmp_path):
    """Intervals per comparison, not Holm-adjusted; and trained by epochs, mix rows also differ in steps."""
    by_epochs = write_paired_tables(
        grid["paired"], tmp_path / "e", 0.95, "normal", 0.05, steps_follow_epochs=True
    )
    by_steps = write_paired_tables(grid["paired"], tmp_path / "s", 0.95, "normal", 0.05)
    assert (grid["paired"]["compared"] == "mix").any()
    for paths in (by_epochs, by_steps):
        assert "The intervals are per comparison, not adjusted" in paths["md"].read_text()
    assert "Mix rows compare training lengths too" in by_epochs["md"].read_text()
    assert "Mix rows compare" not in by_steps["md"].read_text()
    losses_only = grid["paired"][grid["paired"]["compared"] == "loss"]
    only = write_paired_tables(losses_only, tmp_path / "l", 0.95, "normal", 0.05, steps_follow_epochs=True)
    assert "Mix rows compare" not in only["md"].read_text()
