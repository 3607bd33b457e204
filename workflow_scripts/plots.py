import sys
from pathlib import Path

from emogrid.report import (
    collect_reports,
    dataset_title,
    load_log_history,
    per_class_table,
    plot_f1_bars,
    plot_per_class_heatmap,
    plot_training_curves,
)

sys.stderr = open(snakemake.log[0], "w")

reports = collect_reports(snakemake.input.reports)
synthetic = snakemake.params.synthetic
plot_f1_bars(reports, snakemake.output.bars, synthetic=synthetic)
dataset = snakemake.params.heatmap_dataset
plot_per_class_heatmap(
    per_class_table(reports, dataset),
    snakemake.output.heatmap,
    title=f"{dataset_title(dataset, synthetic)} test per-class F1 (tuned thresholds)",
)
# Cell name = results/runs/<mix>/<loss>/<imbalance>/seed<k>
logs = {"/".join(Path(p).parent.parts[-4:]): load_log_history(p) for p in snakemake.input.train_logs}
plot_training_curves(logs, snakemake.output.curves, synthetic=synthetic)
