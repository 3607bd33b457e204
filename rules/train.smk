localrules:
    cell_config,


rule cell_config:
    output:
        f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/cell.json",
    log:
        f"{RESULTS}/logs/cell_config/{{mix}}/{{loss}}/seed{{seed}}.log",
    conda:
        "../envs/report.yaml"
    params:
        # The resolved cell is a param: a cell reruns only when its own settings change.
        cell=get_cell,
    script:
        "../workflow_scripts/write_cell_config.py"


rule train:
    input:
        cell=f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/cell.json",
        tokens=get_train_inputs,
        model=model_dir(),
    output:
        predictions=f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/predictions.parquet",
        train_log=f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/train_log.json",
        run_info=f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/run_info.json",
    log:
        f"{RESULTS}/logs/train/{{mix}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{mix}}/{{loss}}/seed{{seed}}.tsv"
    conda:
        "../envs/train.yaml"
    resources:
        gpu=config["training"]["gpus"],
    params:
        launcher=get_launcher,
    shell:
        "{params.launcher} -m emogrid.train {input.cell} > {log} 2>&1"


rule evaluate:
    input:
        f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/predictions.parquet",
    output:
        f"{RESULTS}/runs/{{mix}}/{{loss}}/seed{{seed}}/eval_report.json",
    log:
        f"{RESULTS}/logs/evaluate/{{mix}}/{{loss}}/seed{{seed}}.log",
    conda:
        "../envs/report.yaml"
    params:
        labels=config["labels"],
        grid=config["evaluation"]["threshold_grid"],
    script:
        "../workflow_scripts/evaluate.py"
