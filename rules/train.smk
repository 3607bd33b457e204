# Cheap bookkeeping runs where snakemake runs, never as a cluster job.
localrules:
    cell_config,
    evaluate,


rule cell_config:
    output:
        f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/cell.json",
    log:
        f"{RESULTS}/logs/cell_config/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}.log",
    # On the way to a cell, like `train`: otherwise a ready evaluation can take the core first and the
    # cell waits (measured: the last cell of the demo started 12 s late behind three evaluations).
    priority: 1
    conda:
        "../envs/report.yaml"
    params:
        # The resolved cell is a param: a cell reruns only when its own settings change.
        cell=get_cell,
    script:
        "../workflow_scripts/write_cell_config.py"


rule train:
    input:
        cell=f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/cell.json",
        tokens=get_train_inputs,
        model=model_dir(),
    output:
        predictions=f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/predictions.parquet",
        train_log=f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/train_log.json",
        run_info=f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/run_info.json",
    log:
        f"{RESULTS}/logs/train/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}.tsv"
    # Cells before bookkeeping: when a core frees up, the next cell starts and evaluations, tables
    # and checks fill the remaining gaps instead of delaying it. Among cells, the longest first.
    priority: get_train_priority
    conda:
        "../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        gpu=config["training"]["gpus"],
        mem_mb=get_train_mem_mb,
        runtime=get_train_runtime,
    params:
        launcher=get_launcher,
    shell:
        # Snakemake starts each attempt with a fresh log; train_log.json lists every attempt's start.
        "{params.launcher} -m emogrid.train --threads {threads} {input.cell} > {log} 2>&1"


rule evaluate:
    input:
        f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/predictions.parquet",
    output:
        f"{RESULTS}/runs/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}/eval_report.json",
    log:
        f"{RESULTS}/logs/evaluate/{{mix}}/{{loss}}/{{imbalance}}/seed{{seed}}.log",
    conda:
        "../envs/report.yaml"
    params:
        labels=config["labels"],
        grid=config["evaluation"]["threshold_grid"],
        label_groups=config["label_groups"],
    script:
        "../workflow_scripts/evaluate.py"


rule check_gpu:
    output:
        json=f"{RESULTS}/gpu_check.json",
        html=report(
            f"{RESULTS}/gpu_check.html",
            caption="../report/gpu_check.rst",
            category="Training",
            labels={"table": "GPU check"},
        ),
    log:
        f"{RESULTS}/logs/check_gpu.log",
    conda:
        "../envs/train.yaml"
    resources:
        # The training jobs' GPU request, so it sees what they see.
        gpu=config["training"]["gpus"],
        mem_mb=2000,
        runtime=10,
    params:
        # A job without inputs or params never reruns: a changed GPU count must. (A params function
        # of resources did not trigger reruns on --set-resources; a gres change in a profile does not,
        # use --forcerun check_gpu.)
        gpus=config["training"]["gpus"],
    shell:
        "python -m emogrid.devices {output.json} {output.html} > {log} 2>&1"
