localrules:
    synthetic_corpus,
    fetch_raw,


# Every job on the way to the first cell has `priority: 1`, as `train` has: the checks and tables that
# can wait (GPU check, cell configs, data summary) take a core only when none of these is ready.


rule synthetic_corpus:
    output:
        synthetic_files(),
    log:
        f"{RESULTS}/logs/synthetic_corpus.log",
    priority: 1
    conda:
        "../envs/data.yaml"
    params:
        synthetic=config["data"]["synthetic"],
        datasets=generator_config(config),
        labels=config["labels"],
    script:
        "../workflow_scripts/synthetic_corpus.py"


rule fetch_raw:
    input:
        get_source_files,
    output:
        f"{RESULTS}/raw/{{dataset}}/manifest.json",
    log:
        f"{RESULTS}/logs/fetch_raw/{{dataset}}.log",
    priority: 1
    conda:
        "../envs/data.yaml"
    params:
        dataset_config=get_dataset_config,
        verify_md5=get_verify_md5,
    script:
        "../workflow_scripts/fetch_raw.py"


rule preprocess:
    input:
        f"{RESULTS}/raw/{{dataset}}/manifest.json",
    output:
        data=expand(f"{RESULTS}/data/{{{{dataset}}}}/{{split}}.parquet", split=SPLITS),
        summary=f"{RESULTS}/data/{{dataset}}/summary.json",
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{dataset}}.tsv"
    priority: 1
    conda:
        "../envs/data.yaml"
    params:
        # Everything the script reads from the config is a param, so changing it reruns the job.
        dataset_config=get_dataset_config,
        labels=config["labels"],
    script:
        "../workflow_scripts/preprocess.py"


rule tokenize:
    input:
        data=expand(f"{RESULTS}/data/{{{{dataset}}}}/{{split}}.parquet", split=SPLITS),
        tokenizer=tokenizer_dir(),
    output:
        expand(f"{RESULTS}/tokens/{{{{dataset}}}}/{{split}}.parquet", split=SPLITS),
    log:
        f"{RESULTS}/logs/tokenize/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tokenize/{{dataset}}.tsv"
    priority: 1
    conda:
        "../envs/train.yaml"
    params:
        max_length=config["model"]["max_length"],
    script:
        "../workflow_scripts/tokenize.py"
