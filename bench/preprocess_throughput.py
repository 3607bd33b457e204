"""Preprocessing throughput on the real data: read + map + split, then tokenize, per dataset.

    python bench/preprocess_throughput.py DATA_DIR [--model models/all-MiniLM-L6-v2] [--repeats 5]

DATA_DIR holds the four datasets' native files, one folder per dataset (goemotions/, semeval2018_ec/,
isear/, meld/), as in ../shared/data. For each dataset and repeat it times emogrid's preprocessing
(`preprocess_dataset`: native reader, label map, split, parquet out) and the workflow's tokenize step
(`tokenize_split`: parquet in, tokenize, parquet out), and, interleaved with it on the same texts,
the raw fast tokenizer called once on the whole list (`tokenizer(texts, truncation=True,
max_length=L)`): the limit. Repeats alternate which of the two tokenizations runs first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import DATASETS, REPO, load_config, machine, spread

from emogrid.preprocess import preprocess_dataset
from emogrid.readers import SPLITS
from emogrid.tokenize import load_tokenizer, tokenize_split


def raw_tokenizer_seconds(tokenizer, texts: list[str], max_length: int) -> float:
    start = time.perf_counter()
    tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    return time.perf_counter() - start


def bench_dataset(name, data_dir: Path, config, tokenizer, max_length, repeats, work: Path) -> dict:
    out = work / "data" / name
    tokens = work / "tokens" / name
    tokens.mkdir(parents=True, exist_ok=True)
    pre, tok, raw, total = [], [], [], []
    rows = 0
    for r in range(repeats):
        start = time.perf_counter()
        preprocess_dataset(name, data_dir / name, config, out)
        pre.append(time.perf_counter() - start)
        texts = [t for split in SPLITS for t in pd.read_parquet(out / f"{split}.parquet")["text"]]
        rows = len(texts)

        def ours():
            start = time.perf_counter()
            for split in SPLITS:
                tokenize_split(out / f"{split}.parquet", tokenizer, max_length, tokens / f"{split}.parquet")
            return time.perf_counter() - start

        if r % 2 == 0:
            tok.append(ours())
            raw.append(raw_tokenizer_seconds(tokenizer, texts, max_length))
        else:
            raw.append(raw_tokenizer_seconds(tokenizer, texts, max_length))
            tok.append(ours())
        total.append(pre[-1] + tok[-1])
    return {
        "rows": rows,
        "preprocess_s": spread(pre),
        "preprocess_rows_per_s": spread([rows / s for s in pre], 0),
        "tokenize_s": spread(tok),
        "tokenize_rows_per_s": spread([rows / s for s in tok], 0),
        "raw_tokenizer_rows_per_s": spread([rows / s for s in raw], 0),
        # Paired per repeat, so a slow moment of the shared machine hits both sides.
        "tokenize_vs_raw": spread([r / t for r, t in zip(raw, tok, strict=True)]),
        "total_s": spread(total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", default=str(REPO / "models/all-MiniLM-L6-v2"))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/preprocess.json")
    args = parser.parse_args()
    config = load_config()
    tokenizer = load_tokenizer(args.model)
    results = {"machine": machine(), "model": args.model, "max_length": args.max_length, "datasets": {}}
    with tempfile.TemporaryDirectory() as work:
        for name in DATASETS:
            results["datasets"][name] = bench_dataset(
                name, args.data_dir, config, tokenizer, args.max_length, args.repeats, Path(work)
            )
            print(name, json.dumps(results["datasets"][name]), flush=True)
    d = results["datasets"].values()
    rows = sum(x["rows"] for x in d)
    # Totals from the per-dataset medians (the repeats of different datasets are not paired).
    total = sum(x["total_s"]["median"] for x in d)
    tok = sum(x["tokenize_s"]["median"] for x in d)
    raw = sum(x["rows"] / x["raw_tokenizer_rows_per_s"]["median"] for x in d)
    results["all"] = {
        "rows": rows,
        "total_s_from_medians": round(total, 2),
        "rows_per_s": round(rows / total),
        "tokenize_vs_raw_from_medians": round(raw / tok, 3),
    }
    print("all", json.dumps(results["all"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
