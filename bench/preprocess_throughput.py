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
import os
import tempfile
import time
from pathlib import Path

# One tokenizer thread, as the documented figures (make bench sets it too): the ratio to the raw rate
# is of the same single-threaded work.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd
from _common import DATASETS, REPO, load_config, machine, save, spread

from emogrid.preprocess import preprocess_dataset
from emogrid.readers import SPLITS
from emogrid.tokenize import load_tokenizer, tokenize_split


def clocks() -> tuple[float, float]:
    """Wall and CPU time of this process: on a shared machine CPU time is the steadier measure."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clocks()
    return now[0] - start[0], now[1] - start[1]


def raw_tokenizer_seconds(tokenizer, texts: list[str], max_length: int) -> tuple[float, float]:
    start = clocks()
    tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    return since(start)


def bench_dataset(name, data_dir: Path, config, tokenizer, max_length, repeats, work: Path) -> dict:
    out = work / "data" / name
    tokens = work / "tokens" / name
    tokens.mkdir(parents=True, exist_ok=True)
    pre, tok, raw, total = [], [], [], []
    rows = 0
    for r in range(repeats):
        start = clocks()
        preprocess_dataset(name, data_dir / name, config, out)
        pre.append(since(start))
        texts = [t for split in SPLITS for t in pd.read_parquet(out / f"{split}.parquet")["text"]]
        rows = len(texts)

        def ours():
            start = clocks()
            for split in SPLITS:
                tokenize_split(out / f"{split}.parquet", tokenizer, max_length, tokens / f"{split}.parquet")
            return since(start)

        if r % 2 == 0:
            tok.append(ours())
            raw.append(raw_tokenizer_seconds(tokenizer, texts, max_length))
        else:
            raw.append(raw_tokenizer_seconds(tokenizer, texts, max_length))
            tok.append(ours())
        total.append((pre[-1][0] + tok[-1][0], pre[-1][1] + tok[-1][1]))
    result = {"rows": rows}
    for clock, k in (("wall", 0), ("cpu", 1)):
        result[clock] = {
            "preprocess_s": spread([x[k] for x in pre]),
            "preprocess_rows_per_s": spread([rows / x[k] for x in pre], 0),
            "tokenize_s": spread([x[k] for x in tok]),
            "tokenize_rows_per_s": spread([rows / x[k] for x in tok], 0),
            "raw_tokenizer_rows_per_s": spread([rows / x[k] for x in raw], 0),
            # Paired per repeat, so a slow moment of the shared machine hits both sides.
            "tokenize_vs_raw": spread([r[k] / t[k] for r, t in zip(raw, tok, strict=True)]),
            "total_s": spread([x[k] for x in total]),
        }
    return result


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
    results["all"] = {"rows": rows}
    for clock in ("wall", "cpu"):
        # Totals from the per-dataset medians (the repeats of different datasets are not paired).
        total = sum(x[clock]["total_s"]["median"] for x in d)
        tok = sum(x[clock]["tokenize_s"]["median"] for x in d)
        raw = sum(x["rows"] / x[clock]["raw_tokenizer_rows_per_s"]["median"] for x in d)
        results["all"][clock] = {
            "total_s_from_medians": round(total, 2),
            "rows_per_s": round(rows / total),
            "tokenize_vs_raw_from_medians": round(raw / tok, 3),
        }
    print("all", json.dumps(results["all"]), flush=True)
    save(args.out, results)


if __name__ == "__main__":
    main()
