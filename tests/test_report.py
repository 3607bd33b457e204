"""emogrid.report: long table, aggregation over seeds, table files, plots and data summaries."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emogrid import io
from emogrid.report import (
    LONG_COLUMNS,
    SUMMARY_COLUMNS,
    SYNTHETIC_COLUMN,
    collect_reports,
    data_summary_table,
    f1_macro_table,
    label_frequency_table,
    load_log_history,
    per_class_table,
    plot_f1_bars,
    plot_per_class_heatmap,
    plot_training_curves,
    summarize_metric,
    write_data_summary,
    write_single_label_tables,
    write_tables,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COVERED = {"goemotions": ["anger", "joy", "fear", "neutral"], "meld": ["anger", "joy", "neutral"]}
# (loss, mix, imbalance) -> seeds; asl/goemotions has a single seed to exercise the n=1 case.
CELLS = {
    ("bce", "goemotions", "none"): [1, 2, 3],
    ("bce", "all4", "none"): [1, 2, 3],
    ("bce", "all4", "oversample"): [1, 2],
    ("asl", "goemotions", "none"): [1],
    ("asl", "all4", "none"): [1, 2],
}
GROUPS = {"ekman": ["anger", "joy", "neutral"]}


def fake_report(rng: np.random.Generator, loss: str, mix: str, imbalance: str, seed: int) -> dict:
    def split_metrics(covered, with_per_class):
        metrics = {"n": int(rng.integers(50, 100))}
        for name in ("f1_macro@0.5", "f1_macro@tuned", "f1_micro@0.5", "f1_micro@tuned"):
            metrics[name] = float(rng.random())
        if with_per_class:
            for name in ("per_class@0.5", "per_class@tuned"):
                metrics[name] = {label: float(rng.random()) for label in covered}
        return metrics

    def level(covered):
        return {
            "covered_labels": covered,
            "thresholds": {label: float(rng.choice([0.3, 0.5])) for label in covered},
            "validation": split_metrics(covered, False),
            "test": split_metrics(covered, True),
        }

    return {
        "cell": {"mix": mix, "loss": loss, "imbalance": imbalance, "seed": seed},
        "threshold_source": "validation",
        "datasets": {
            dataset: level(covered) | {"levels": {name: level(groups) for name, groups in GROUPS.items()}}
            for dataset, covered in COVERED.items()
        },
    }


@pytest.fixture
def reports(tmp_path):
    rng = np.random.default_rng(5)
    written = {}
    for (loss, mix, imbalance), seeds in CELLS.items():
        for seed in seeds:
            path = tmp_path / "runs" / mix / loss / imbalance / f"seed{seed}" / "eval_report.json"
            report = fake_report(rng, loss, mix, imbalance, seed)
            io.write_json(path, report)
            written[(loss, mix, imbalance, seed)] = (path, report)
    return written


@pytest.fixture
def long_df(reports):
    return collect_reports([path for path, _ in reports.values()])


def assert_valid_png(path):
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 1000
    assert not list(path.parent.glob("*.tmp"))


# --------------------------------------------------------------------------- collect_reports


def test_collect_reports_long_format(long_df, reports):
    assert list(long_df.columns) == LONG_COLUMNS
    key = ["mix", "loss", "imbalance", "seed", "dataset", "level", "split", "metric", "label"]
    assert long_df.duplicated(subset=key).sum() == 0
    _, report = reports[("bce", "all4", "none", 2)]
    row = long_df[
        (long_df["loss"] == "bce")
        & (long_df["mix"] == "all4")
        & (long_df["imbalance"] == "none")
        & (long_df["seed"] == 2)
        & (long_df["dataset"] == "meld")
        & (long_df["level"] == "labels")
        & (long_df["split"] == "test")
    ]
    scalar = row[row["metric"] == "f1_macro@tuned"]
    assert scalar["label"].isna().all()
    assert scalar["value"].item() == report["datasets"]["meld"]["test"]["f1_macro@tuned"]
    per_class = row[row["metric"] == "per_class@tuned"].set_index("label")["value"].to_dict()
    assert per_class == report["datasets"]["meld"]["test"]["per_class@tuned"]
    cell_rows = long_df[
        (long_df["loss"] == "bce")
        & (long_df["mix"] == "all4")
        & (long_df["imbalance"] == "none")
        & (long_df["seed"] == 2)
    ]
    thresholds = cell_rows[
        (cell_rows["metric"] == "threshold")
        & (cell_rows["dataset"] == "meld")
        & (cell_rows["level"] == "labels")
    ]
    assert thresholds.set_index("label")["value"].to_dict() == report["datasets"]["meld"]["thresholds"]
    assert set(thresholds["split"]) == {"validation"}
    ekman = cell_rows[
        (cell_rows["level"] == "ekman") & (cell_rows["dataset"] == "meld") & (cell_rows["split"] == "test")
    ]
    ekman_report = report["datasets"]["meld"]["levels"]["ekman"]["test"]
    assert ekman[ekman["metric"] == "f1_macro@tuned"]["value"].item() == ekman_report["f1_macro@tuned"]


def test_collect_reports_rejects_duplicate_cells(reports):
    path, _ = reports[("bce", "all4", "none", 1)]
    with pytest.raises(ValueError, match="twice"):
        collect_reports([path, path])


def test_collect_reports_rejects_reports_not_tuned_on_validation(tmp_path):
    report = fake_report(np.random.default_rng(0), "bce", "all4", "none", 1)
    report["threshold_source"] = "test"
    io.write_json(tmp_path / "eval_report.json", report)
    with pytest.raises(ValueError, match="threshold_source"):
        collect_reports([tmp_path / "eval_report.json"])


# --------------------------------------------------------------------------- aggregation and tables


def test_summary_mean_std_match_numpy(long_df, reports):
    summary = summarize_metric(long_df, "f1_macro@tuned", "test")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == len(CELLS) * len(COVERED)
    for row in summary.itertuples():
        seeds = CELLS[(row.loss, row.mix, row.imbalance)]
        test_metrics = [
            reports[(row.loss, row.mix, row.imbalance, seed)][1]["datasets"][row.dataset]["test"]
            for seed in seeds
        ]
        values = np.array([metrics["f1_macro@tuned"] for metrics in test_metrics])
        assert row.n == len(values)
        assert row.mean == pytest.approx(np.mean(values))
        if len(values) > 1:
            assert row.std == pytest.approx(np.std(values, ddof=1))
        else:
            assert np.isnan(row.std)


def test_f1_macro_table_cells(long_df):
    table = f1_macro_table(long_df)
    assert table.index.names == ["loss", "mix", "imbalance"]
    assert list(table.index) == list(CELLS)
    assert list(table.columns) == ["goemotions", "goemotions · ekman", "meld", "meld · ekman"]
    summary = summarize_metric(long_df, levels=None).set_index(
        ["loss", "mix", "imbalance", "dataset", "level"]
    )
    bce = summary.loc[("bce", "all4", "none", "meld", "labels")]
    assert table.loc[("bce", "all4", "none"), "meld"] == f"{bce['mean']:.3f} ± {bce['std']:.3f} (n=3)"
    ekman = summary.loc[("bce", "all4", "oversample", "meld", "ekman")]
    assert table.loc[("bce", "all4", "oversample"), "meld · ekman"].startswith(f"{ekman['mean']:.3f} ± ")
    assert table.loc[("asl", "goemotions", "none"), "goemotions"].endswith("± n/a (n=1)")
    assert list(f1_macro_table(long_df, levels=["labels"]).columns) == list(COVERED)


def test_table_rows_grouped_by_loss_whatever_the_input_order(reports):
    mix_major = [
        reports[(loss, mix, imbalance, seed)][0]
        for imbalance in ("oversample", "none")
        for mix in ("goemotions", "all4")
        for loss in ("bce", "asl")
        if (loss, mix, imbalance) in CELLS
        for seed in CELLS[(loss, mix, imbalance)]
    ]
    table = f1_macro_table(collect_reports(mix_major))
    # Grouped by loss, then mix, then strategy, each in order of first appearance: the first report
    # read is bce/all4/oversample, so all4 comes before goemotions and oversample before none.
    assert list(table.index) == [
        ("bce", "all4", "oversample"),
        ("bce", "all4", "none"),
        ("bce", "goemotions", "none"),
        ("asl", "all4", "none"),
        ("asl", "goemotions", "none"),
    ]


def test_write_tables_files(long_df, tmp_path):
    summary = summarize_metric(long_df)
    paths = write_tables(summary, tmp_path / "tables" / "f1_macro")
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == [*SUMMARY_COLUMNS, SYNTHETIC_COLUMN]
    assert not csv[SYNTHETIC_COLUMN].any()
    np.testing.assert_allclose(csv["mean"], summary["mean"])
    markdown = paths["md"].read_text().splitlines()
    table_lines = [line for line in markdown if line.startswith("|")]
    assert table_lines[0] == "| loss | mix | imbalance | goemotions | meld |"
    assert len(table_lines) == 2 + len(CELLS)
    html_text = paths["html"].read_text()
    assert "<table" in html_text and "± n/a (n=1)" in html_text
    assert not list((tmp_path / "tables").glob("*.tmp"))


def test_tables_of_synthetic_data_say_so_in_every_file(long_df, tmp_path):
    paths = write_tables(summarize_metric(long_df), tmp_path / "f1_macro", synthetic=["meld"])
    csv = pd.read_csv(paths["csv"])
    assert (csv[SYNTHETIC_COLUMN] == (csv["dataset"] == "meld")).all() and csv[SYNTHETIC_COLUMN].any()
    for kind in ("md", "html"):
        assert "SYNTHETIC DATA: meld is the generated demo corpus" in paths[kind].read_text()
    # The label opens the note, before any warning (README: "the note opens with SYNTHETIC DATA").
    warned = write_tables(
        summarize_metric(long_df), tmp_path / "warned", synthetic=["meld"], warning="Collapsed: x. "
    )
    text = warned["md"].read_text()
    assert text.index("SYNTHETIC DATA: meld") < text.index("Collapsed: x.")
    plain = write_tables(summarize_metric(long_df), tmp_path / "real")
    assert all("SYNTHETIC" not in plain[kind].read_text() for kind in ("md", "html"))


def test_write_tables_rejects_display_table(long_df, tmp_path):
    with pytest.raises(ValueError, match="summarize_metric"):
        write_tables(f1_macro_table(long_df), tmp_path / "t")


def test_per_class_table_means_match_numpy(long_df, reports):
    table = per_class_table(long_df, "meld")
    assert list(table.columns) == COVERED["meld"]
    assert list(table.index) == list(CELLS)
    for (loss, mix, imbalance), seeds in CELLS.items():
        for label in COVERED["meld"]:
            values = [
                reports[(loss, mix, imbalance, seed)][1]["datasets"]["meld"]["test"]["per_class@tuned"][label]
                for seed in seeds
            ]
            assert table.loc[(loss, mix, imbalance), label] == pytest.approx(np.mean(values))


# --------------------------------------------------------------------------- plots


def test_plot_f1_bars_writes_png(long_df, tmp_path):
    path = tmp_path / "plots" / "f1_bars.png"
    plot_f1_bars(long_df, path)
    assert_valid_png(path)


def test_plot_per_class_heatmap_writes_png(long_df, tmp_path):
    path = tmp_path / "plots" / "heatmap.png"
    plot_per_class_heatmap(per_class_table(long_df, "goemotions"), path)
    assert_valid_png(path)


def test_plot_training_curves_writes_png(tmp_path):
    log_history = [{"step": step, "loss": 1.0 / step, "learning_rate": 1e-5} for step in range(10, 110, 10)]
    log_history += [{"step": step, "eval_f1_macro": step / 200, "eval_loss": 0.3} for step in (50, 100)]
    log_history.append({"step": 100, "train_loss": 0.2, "train_runtime": 12.0})
    log_path = tmp_path / "train_log.json"
    io.write_json(log_path, {"log_history": log_history, "warnings": []})
    assert load_log_history(log_path) == log_history
    path = tmp_path / "plots" / "curves.png"
    plot_training_curves({"all4/bce/seed1": log_history, "all4/asl/seed1": log_history[:3]}, path)
    assert_valid_png(path)


def test_figures_of_synthetic_data_say_so_in_their_titles(long_df, tmp_path, monkeypatch):
    # A figure copied out of the report must still say it was drawn from the generated demo corpus.
    import emogrid.report as report

    titles = {}

    def capture(figure, path):
        titles[Path(path).stem] = [figure.get_suptitle()] + [axis.get_title() for axis in figure.axes]

    monkeypatch.setattr(report, "_save_png", capture)
    plot_f1_bars(long_df, tmp_path / "bars.png", synthetic=["meld"])
    assert "meld (SYNTHETIC)" in titles["bars"] and "goemotions" in titles["bars"]
    plot_training_curves(
        {"all4/bce/seed1": [{"step": 1, "loss": 0.5}]}, tmp_path / "curves.png", synthetic=["meld"]
    )
    assert titles["curves"][0] == "SYNTHETIC DATA: meld (the generated demo corpus)"
    plot_f1_bars(long_df, tmp_path / "real.png")
    plot_training_curves({"all4/bce/seed1": [{"step": 1, "loss": 0.5}]}, tmp_path / "real_curves.png")
    assert not any("SYNTHETIC" in title for title in titles["real"] + titles["real_curves"])


def test_write_tables_note_says_how_scores_were_thresholded(long_df, tmp_path):
    tuned = write_tables(summarize_metric(long_df), tmp_path / "tuned")
    fixed = write_tables(
        summarize_metric(long_df, metric="f1_macro@0.5"),
        tmp_path / "fixed",
        title="Test macro-F1 (threshold 0.5)",
        thresholds="every threshold fixed at 0.5",
    )
    assert "thresholds tuned on validation" in tuned["md"].read_text()
    assert (
        "every threshold fixed at 0.5" in fixed["md"].read_text() and "tuned" not in fixed["md"].read_text()
    )


# --------------------------------------------------------------------------- data summaries

SUMMARIES = {
    "isear": {
        "dataset": "isear",
        "splits": {
            "train": {
                "read": 6200,
                "kept": 6100,
                "dropped": {"non-answer": 90, "duplicate": 10},
                "no_covered_label": 4,
            },
            "test": {"read": 770, "kept": 770, "dropped": {}},
        },
        "label_counts": {"train": {"anger": 900, "joy": 880}, "test": {"anger": 110, "joy": 100}},
        "covered_labels": ["anger", "joy", "fear"],
        "texts_also_in_train": {"test": 3},
    },
    "meld": {
        "dataset": "meld",
        "splits": {"train": {"read": 9989, "kept": 9989, "dropped": {}}},
        "label_counts": {"train": {"anger": 1109, "neutral": 4710}},
        "covered_labels": ["anger", "neutral"],
        "expected_rows": {"train": 9989},
        "expected_rows_match": True,
        "expected_rows_mismatches": {},
    },
}


def test_data_summary_table_rows():
    table = data_summary_table(SUMMARIES)
    assert list(table.columns) == [
        "dataset",
        "split",
        "read",
        "published",
        "kept",
        "dropped",
        "dropped_reasons",
        "no_covered_label",
        "text_in_train",
        "text_in_other_train",
        "truncated",
    ]
    isear_train = table[(table["dataset"] == "isear") & (table["split"] == "train")].iloc[0]
    assert isear_train["dropped"] == 100
    assert isear_train["dropped_reasons"] == "non-answer: 90; duplicate: 10"
    assert table[table["dataset"] == "meld"]["dropped_reasons"].item() == ""
    # Rows whose labels are all unmapped are counted; summaries written before the count have none.
    assert isear_train["no_covered_label"] == 4
    assert table["no_covered_label"].isna().sum() == 2  # isear test, meld train
    # Overlap with train is counted for evaluation splits; train and older summaries have none.
    overlap = table.set_index(["dataset", "split"])["text_in_train"]
    assert overlap[("isear", "test")] == 3
    assert overlap[[("isear", "train"), ("meld", "train")]].isna().all()
    assert table["text_in_other_train"].isna().all()  # not computed without the texts
    other = data_summary_table(SUMMARIES, {"isear": {"test": 2}})
    assert other.set_index(["dataset", "split"])["text_in_other_train"][("isear", "test")] == 2
    assert table["truncated"].isna().all()  # not known without the token files
    cut = data_summary_table(SUMMARIES, truncated={"isear": {"train": 5, "test": None}, "meld": {"train": 0}})
    cut = cut.set_index(["dataset", "split"])["truncated"]
    assert cut[("isear", "train")] == 5 and cut[("meld", "train")] == 0 and pd.isna(cut[("isear", "test")])
    published = table.set_index(["dataset", "split"])["published"]
    assert published[("meld", "train")] == 9989 and pd.isna(published[("isear", "train")])


def test_label_frequency_table_marks_uncovered_labels_missing():
    table = label_frequency_table(SUMMARIES, labels=["anger", "joy", "fear", "neutral"])
    assert table.loc["isear", "anger"] == 900
    assert table.loc["isear", "fear"] == 0  # covered, never seen
    assert pd.isna(table.loc["isear", "neutral"])  # not covered
    assert pd.isna(table.loc["meld", "joy"])


def test_write_data_summary_files(tmp_path):
    paths = write_data_summary(SUMMARIES, tmp_path / "tables" / "data_summary")
    assert pd.read_csv(paths["csv"])["kept"].tolist() == [6100, 770, 9989]
    counts = pd.read_csv(paths["label_counts_csv"])
    assert counts.columns[0] == "dataset"
    assert "non-answer: 90" in paths["md"].read_text()
    assert "<table" in paths["html"].read_text()
    assert not list((tmp_path / "tables").glob("*.tmp"))
    assert "differ from the published counts" not in paths["md"].read_text()
    assert "SYNTHETIC" not in paths["md"].read_text()
    # Without the token files' counts the note says the empty column is not a count of 0.
    assert "not a count of 0" in paths["md"].read_text()
    counted = write_data_summary(
        SUMMARIES,
        tmp_path / "counted",
        truncated={d: dict.fromkeys(s["splits"], 0) for d, s in SUMMARIES.items()},
    )
    assert "not a count of 0" not in counted["md"].read_text()
    assert not pd.read_csv(paths["csv"])[SYNTHETIC_COLUMN].any()
    marked = write_data_summary(SUMMARIES, tmp_path / "synthetic", synthetic=list(SUMMARIES))
    assert pd.read_csv(marked["csv"])[SYNTHETIC_COLUMN].all()
    assert f"SYNTHETIC DATA: {', '.join(SUMMARIES)} are the generated" in marked["md"].read_text()


def test_the_data_summary_says_which_row_counts_differ_from_the_published_ones(tmp_path):
    summaries = copy.deepcopy(SUMMARIES)
    summaries["isear"] |= {"expected_rows": {"all": 7666}, "expected_rows_mismatches": {"all": 6970}}
    paths = write_data_summary(summaries, tmp_path / "data_summary")
    for kind in ("md", "html"):
        assert "isear all: read 6970, published 7666" in paths[kind].read_text()


def test_single_label_table_has_a_column_per_dataset_and_metric_with_seed_means(reports, tmp_path):
    rng = np.random.default_rng(11)
    expected = {}
    for (loss, mix, imbalance, _seed), (path, report) in reports.items():
        # meld as a single-label dataset: its entries carry the argmax scores (validation too).
        for split in ("validation", "test"):
            scores = {f"{m}@argmax": float(rng.random()) for m in ("accuracy", "f1_weighted", "f1_macro")}
            report["datasets"]["meld"][split].update(scores)
            if split == "test":
                expected.setdefault((loss, mix, imbalance), []).append(scores["f1_weighted@argmax"])
        io.write_json(path, report)
    long_df = collect_reports([path for path, _ in reports.values()])
    paths = write_single_label_tables(long_df, tmp_path / "single_label", synthetic=["meld"])
    csv = pd.read_csv(paths["csv"])
    weighted = csv[csv["level"] == "weighted-F1"]
    assert set(csv["dataset"]) == {"meld"} and set(csv["level"]) == {"weighted-F1", "accuracy", "macro-F1"}
    for row in weighted.itertuples():
        assert row.mean == pytest.approx(np.mean(expected[row.loss, row.mix, row.imbalance]))
        assert row.n == len(expected[row.loss, row.mix, row.imbalance])
    header = next(line for line in paths["md"].read_text().splitlines() if line.startswith("|"))
    assert header == "| loss | mix | imbalance | meld · weighted-F1 | meld · accuracy | meld · macro-F1 |"
    assert "no threshold" in paths["md"].read_text() and "SYNTHETIC DATA" in paths["html"].read_text()
    assert "n counts fewer seeds" not in paths["md"].read_text()
    assert "No bootstrap intervals" not in paths["md"].read_text()  # none asked for
    # One report written before the scores existed: its seed is left out, and the note says so.
    path, report = reports[("bce", "all4", "none", 1)]
    for split in ("validation", "test"):
        for metric in ("accuracy", "f1_weighted", "f1_macro"):
            del report["datasets"]["meld"][split][f"{metric}@argmax"]
    io.write_json(path, report)
    long_df = collect_reports([path for path, _ in reports.values()])
    paths = write_single_label_tables(long_df, tmp_path / "single_label_mixed")
    assert "n counts fewer seeds: meld (1 of 11)" in paths["md"].read_text()


def test_single_label_table_without_a_single_label_dataset_says_why(long_df, tmp_path):
    paths = write_single_label_tables(long_df, tmp_path / "single_label")
    assert pd.read_csv(paths["csv"]).empty
    assert "No evaluated dataset is single-label" in paths["md"].read_text()
    assert "No evaluated dataset is single-label" in paths["html"].read_text()


def test_notes_name_the_datasets_resampled_in_whole_clusters(long_df, tmp_path):
    from emogrid.report import clustered_datasets

    clustered = clustered_datasets({"meld": r"(.+)_utt\d+", "isear": None})
    assert clustered == ["meld"] and clustered_datasets(None) == []
    summary = summarize_metric(long_df).assign(ci_low=0.1, ci_high=0.9)
    paths = write_tables(summary, tmp_path / "f1", confidence=0.95, clustered=clustered)
    assert "bootstrap interval over test examples (meld in whole clusters of rows)" in paths["md"].read_text()
    plain = write_tables(summary, tmp_path / "plain", confidence=0.95)
    assert "clusters" not in plain["md"].read_text()


def test_html_tables_leave_missing_values_blank_in_every_column_type():
    # pandas' nullable integers printed <NA> despite na_rep="" (72 cells of the demo's data summary).
    from emogrid.htmlpage import to_html_document

    frame = pd.DataFrame(
        {"count": pd.array([3, None], dtype="Int64"), "share": [0.25, np.nan], "name": ["a", None]}
    )
    page = to_html_document("t", [("t", "note", frame)])
    assert "&lt;NA&gt;" not in page and "NaN" not in page and "None" not in page
    assert "<td>3</td>" in page and "0.2500" in page


def test_the_note_gives_each_datasets_test_rows_and_its_clusters():
    from emogrid.report import resampled_units

    intervals = pd.DataFrame(
        {
            "dataset": ["goemotions", "goemotions", "isear"],
            "n_examples": [200, 200, 136],
            "n_clusters": [200, 200, 20],
        }
    )
    assert resampled_units(intervals) == " Test rows: goemotions 200, isear 136 (resampled as 20 clusters)."
    assert resampled_units(intervals.drop(columns="n_clusters")) == " Test rows: goemotions 200, isear 136."
    assert resampled_units(pd.DataFrame()) == ""
