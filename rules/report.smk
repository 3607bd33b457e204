# Aggregation, plots and tables run where snakemake runs (seconds of numpy), never as cluster jobs.
localrules:
    resolved_config,
    bootstrap,
    f1_tables,
    paired_tables,
    plots,
    data_summary,
    run_overview,


rule bootstrap:
    input:
        predictions=cell_paths("predictions.parquet"),
        reports=cell_paths("eval_report.json"),
    output:
        intervals=f"{RESULTS}/statistics/intervals.csv",
        paired=f"{RESULTS}/statistics/paired.csv",
    log:
        f"{RESULTS}/logs/bootstrap.log",
    benchmark:
        f"{RESULTS}/benchmarks/bootstrap.tsv"
    conda:
        "../envs/report.yaml"
    params:
        labels=config["labels"],
        label_groups=config["label_groups"],
        settings=config["evaluation"]["statistics"],
    script:
        "../workflow_scripts/bootstrap.py"


rule paired_tables:
    input:
        paired=f"{RESULTS}/statistics/paired.csv",
        reports=cell_paths("eval_report.json"),
    output:
        md=report(
            f"{RESULTS}/tables/paired.md",
            caption="../report/paired.rst",
            category="Results",
            labels={"table": "paired comparisons", "format": "markdown"},
        ),
        html=report(
            f"{RESULTS}/tables/paired.html",
            caption="../report/paired.rst",
            category="Results",
            labels={"table": "paired comparisons", "format": "html"},
        ),
        csv=report(
            f"{RESULTS}/tables/paired.csv",
            caption="../report/paired.rst",
            category="Results",
            labels={"table": "paired comparisons", "format": "csv"},
        ),
        plot=report(
            f"{RESULTS}/plots/paired_differences.png",
            caption="../report/paired_plot.rst",
            category="Results",
            labels={"figure": "paired differences"},
        ),
    log:
        f"{RESULTS}/logs/paired_tables.log",
    conda:
        "../envs/report.yaml"
    params:
        settings=config["evaluation"]["statistics"],
        synthetic=synthetic_datasets(config),
        # Trained by epochs: mixes of different sizes also train for different numbers of steps.
        steps_follow_epochs=config["training"]["max_steps"] <= 0,
    script:
        "../workflow_scripts/paired_tables.py"


rule f1_tables:
    input:
        reports=cell_paths("eval_report.json"),
        intervals=f"{RESULTS}/statistics/intervals.csv",
    output:
        csv=report(
            f"{RESULTS}/tables/f1_macro.csv",
            caption="../report/f1_macro.rst",
            category="Results",
            labels={"table": "test macro-F1", "format": "csv"},
        ),
        md=report(
            f"{RESULTS}/tables/f1_macro.md",
            caption="../report/f1_macro.rst",
            category="Results",
            labels={"table": "test macro-F1", "format": "markdown"},
        ),
        html=report(
            f"{RESULTS}/tables/f1_macro.html",
            caption="../report/f1_macro.rst",
            category="Results",
            labels={"table": "test macro-F1", "format": "html"},
        ),
        at_half=report(
            f"{RESULTS}/tables/f1_macro_at_0.5.csv",
            caption="../report/f1_at_half.rst",
            category="Results",
            labels={"table": "test macro-F1 at 0.5", "format": "csv"},
        ),
        at_half_md=report(
            f"{RESULTS}/tables/f1_macro_at_0.5.md",
            caption="../report/f1_at_half.rst",
            category="Results",
            labels={"table": "test macro-F1 at 0.5", "format": "markdown"},
        ),
        at_half_html=report(
            f"{RESULTS}/tables/f1_macro_at_0.5.html",
            caption="../report/f1_at_half.rst",
            category="Results",
            labels={"table": "test macro-F1 at 0.5", "format": "html"},
        ),
        micro=report(
            f"{RESULTS}/tables/f1_micro.csv",
            caption="../report/f1_micro.rst",
            category="Results",
            labels={"table": "test micro-F1", "format": "csv"},
        ),
        micro_md=report(
            f"{RESULTS}/tables/f1_micro.md",
            caption="../report/f1_micro.rst",
            category="Results",
            labels={"table": "test micro-F1", "format": "markdown"},
        ),
        micro_html=report(
            f"{RESULTS}/tables/f1_micro.html",
            caption="../report/f1_micro.rst",
            category="Results",
            labels={"table": "test micro-F1", "format": "html"},
        ),
        single=report(
            f"{RESULTS}/tables/single_label.csv",
            caption="../report/single_label.rst",
            category="Results",
            labels={"table": "single-label test scores", "format": "csv"},
        ),
        single_md=report(
            f"{RESULTS}/tables/single_label.md",
            caption="../report/single_label.rst",
            category="Results",
            labels={"table": "single-label test scores", "format": "markdown"},
        ),
        single_html=report(
            f"{RESULTS}/tables/single_label.html",
            caption="../report/single_label.rst",
            category="Results",
            labels={"table": "single-label test scores", "format": "html"},
        ),
    log:
        f"{RESULTS}/logs/f1_tables.log",
    conda:
        "../envs/report.yaml"
    params:
        confidence=config["evaluation"]["statistics"]["confidence"],
        clusters=config["evaluation"]["statistics"].get("clusters"),
        synthetic=synthetic_datasets(config),
    script:
        "../workflow_scripts/f1_tables.py"


rule plots:
    input:
        reports=cell_paths("eval_report.json"),
        train_logs=cell_paths("train_log.json"),
    output:
        bars=report(
            f"{RESULTS}/plots/f1_macro_bars.png",
            caption="../report/f1_bars.rst",
            category="Results",
            labels={"figure": "macro-F1 by loss and mix"},
        ),
        heatmap=report(
            f"{RESULTS}/plots/per_class_f1.png",
            caption="../report/per_class.rst",
            category="Results",
            labels={"figure": "per-class F1"},
        ),
        curves=report(
            f"{RESULTS}/plots/training_curves.png",
            caption="../report/curves.rst",
            category="Training",
            labels={"figure": "loss and validation F1 curves"},
        ),
    log:
        f"{RESULTS}/logs/plots.log",
    conda:
        "../envs/report.yaml"
    params:
        heatmap_dataset=evaluation_datasets(config)[0],
        synthetic=synthetic_datasets(config),
    script:
        "../workflow_scripts/plots.py"


rule data_summary:
    input:
        summaries=expand(f"{RESULTS}/data/{{dataset}}/summary.json", dataset=DATASETS),
        # The texts, for the evaluation rows another dataset's train split also has.
        data=expand(
            f"{RESULTS}/data/{{dataset}}/{{split}}.parquet",
            dataset=DATASETS,
            split=SPLITS,
        ),
        # Their metadata only: the rows model.max_length cut.
        tokens=expand(
            f"{RESULTS}/tokens/{{dataset}}/{{split}}.parquet",
            dataset=DATASETS,
            split=SPLITS,
        ),
    output:
        md=report(
            f"{RESULTS}/tables/data_summary.md",
            caption="../report/data_summary.rst",
            category="Data",
            labels={"table": "preprocessing summary", "format": "markdown"},
        ),
        csv=report(
            f"{RESULTS}/tables/data_summary.csv",
            caption="../report/data_summary.rst",
            category="Data",
            labels={"table": "preprocessing summary", "format": "csv"},
        ),
        html=report(
            f"{RESULTS}/tables/data_summary.html",
            caption="../report/data_summary.rst",
            category="Data",
            labels={"table": "preprocessing summary", "format": "html"},
        ),
        label_counts=report(
            f"{RESULTS}/tables/data_summary_label_counts.csv",
            caption="../report/label_counts.rst",
            category="Data",
            labels={"table": "label counts (train)", "format": "csv"},
        ),
    log:
        f"{RESULTS}/logs/data_summary.log",
    conda:
        "../envs/report.yaml"
    params:
        labels=config["labels"],
        synthetic=synthetic_datasets(config),
    script:
        "../workflow_scripts/data_summary.py"


rule run_overview:
    input:
        run_info=cell_paths("run_info.json"),
        train_logs=cell_paths("train_log.json"),
    output:
        report(
            f"{RESULTS}/tables/runs.html",
            caption="../report/runs.rst",
            category="Training",
            labels={"table": "runs, versions and warnings"},
        ),
    log:
        f"{RESULTS}/logs/run_overview.log",
    conda:
        "../envs/report.yaml"
    params:
        synthetic=synthetic_datasets(config),
    script:
        "../workflow_scripts/run_overview.py"


rule resolved_config:
    output:
        report(
            f"{RESULTS}/config.resolved.yaml",
            caption="../report/resolved_config.rst",
            category="Provenance",
            labels={"file": "resolved config"},
        ),
    log:
        f"{RESULTS}/logs/resolved_config.log",
    conda:
        "../envs/report.yaml"
    params:
        # Any change of the config but a scheduler-only one rewrites the file.
        config=recorded_config(config),
        snakemake_version=SNAKEMAKE_VERSION,
    script:
        "../workflow_scripts/resolved_config.py"
