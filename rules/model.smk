if config["model"]["build_tiny"]:

    # Tokenizer and weights are two jobs that run side by side (the embedding table has a fixed size),
    # and tokenizing needs only the tokenizer, which needs no torch.
    localrules:
        build_tiny_model,

    rule build_tiny_tokenizer:
        input:
            expand(f"{RESULTS}/data/{{dataset}}/train.parquet", dataset=DATASETS),
        output:
            directory(tokenizer_dir()),
        log:
            f"{RESULTS}/logs/build_tiny_tokenizer.log",
        priority: 1
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/build_tiny_tokenizer.py"

    rule build_tiny_weights:
        output:
            directory(f"{RESULTS}/tiny_weights"),
        log:
            f"{RESULTS}/logs/build_tiny_weights.log",
        priority: 1
        conda:
            "../envs/train.yaml"
        params:
            labels=config["labels"],
        script:
            "../workflow_scripts/build_tiny_weights.py"

    # Copies the two folders' files into one model folder (and checks they fit together).
    rule build_tiny_model:
        input:
            weights=f"{RESULTS}/tiny_weights",
            tokenizer=tokenizer_dir(),
        output:
            directory(f"{RESULTS}/model"),
        log:
            f"{RESULTS}/logs/build_tiny_model.log",
        priority: 1
        conda:
            "../envs/train.yaml"
        script:
            "../workflow_scripts/build_tiny_model.py"

elif not Path(config["model"]["name"]).is_dir():

    # Compute nodes often have no internet: the hub download runs where snakemake runs.
    localrules:
        fetch_model,

    rule fetch_model:
        output:
            directory(f"{RESULTS}/model"),
        log:
            f"{RESULTS}/logs/fetch_model.log",
        conda:
            "../envs/train.yaml"
        params:
            name=config["model"]["name"],
            revision=config["model"]["revision"],
        script:
            "../workflow_scripts/fetch_model.py"
