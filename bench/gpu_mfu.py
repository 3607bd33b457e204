"""GPU training throughput and MFU of DeBERTa-v3-large (random weights, the published config).

    python bench/gpu_mfu.py OUT.json [--steps 20] [--warmup 5] [--only NAME ...]

Each variant trains emogrid's classifier (`EmotionClassifier`: DeBERTa-v3-large encoder, CLS pooling,
28-way head, BCE) on full batches of random token ids of exactly `max_length` tokens, so every token
is real work and the FLOP count is exact. Nothing is downloaded: the encoder is built from the
architecture values of microsoft/deberta-v3-large's config.json with random weights.

MFU = model FLOPs per second / the GPU's dense peak (H100 SXM: 989.4 TFLOP/s for bf16 and fp16).
Model FLOPs per step = 6 x non-embedding parameters x tokens (forward + backward matrix products)
+ 12 x layers x hidden x L^2 x batch (attention scores and weighted sum, forward + backward)
+ 24 x layers x hidden x L x 2k x batch (DeBERTa's content-to-position and position-to-content terms,
with 2k = 2 x position_buckets relative positions). Recomputation under activation checkpointing is not
counted (MFU, not hardware FLOPs utilisation).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emogrid.attention import use_sdpa_attention  # noqa: E402
from emogrid.losses import bce_loss  # noqa: E402
from emogrid.modeling import EmotionClassifier  # noqa: E402

# microsoft/deberta-v3-large config.json (architecture values only).
DEBERTA_V3_LARGE = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-7,
    "relative_attention": True,
    "max_relative_positions": -1,
    "position_buckets": 256,
    "norm_rel_ebd": "layer_norm",
    "share_att_key": True,
    "pos_att_type": ["p2c", "c2p"],
    "position_biased_input": False,
    "pad_token_id": 0,
    "vocab_size": 128100,
}
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}
NUM_LABELS = 28


def peak_tflops() -> float:
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    raise SystemExit(f"no peak figure for {name!r}: add it to PEAK_TFLOPS")


def build_model(attention: str = "eager", device: str = "cpu") -> EmotionClassifier:
    """`attention`: eager = transformers' DeBERTa attention; sdpa = emogrid.attention's fused one.
    The weights are initialised on `device` (on the GPU that takes a second, not tens of seconds)."""
    from transformers import DebertaV2Config, DebertaV2Model

    torch.manual_seed(0)
    with torch.device(device):
        encoder = DebertaV2Model(DebertaV2Config(**DEBERTA_V3_LARGE))
    if attention == "sdpa":
        use_sdpa_attention(encoder)
    with torch.device(device):
        return EmotionClassifier(encoder, NUM_LABELS, pooling="cls")


def flops_per_step(model: EmotionClassifier, batch: int, length: int) -> float:
    c = model.config
    embedding = sum(p.numel() for n, p in model.named_parameters() if "word_embeddings" in n)
    dense = sum(p.numel() for p in model.parameters()) - embedding
    tokens = batch * length
    attention = 12 * c.num_hidden_layers * c.hidden_size * length**2 * batch
    relative = 24 * c.num_hidden_layers * c.hidden_size * length * 2 * c.position_buckets * batch
    return 6 * dense * tokens + attention + relative


def make_batches(n: int, batch: int, length: int, device) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        ids = torch.randint(1000, DEBERTA_V3_LARGE["vocab_size"], (batch, length), generator=g)
        ids[:, 0] = 1  # [CLS]
        labels = (torch.rand(batch, NUM_LABELS, generator=g) < 0.05).float()
        out.append(
            {
                "input_ids": ids.to(device),
                "attention_mask": torch.ones_like(ids).to(device),
                "labels": labels.to(device),
            }
        )
    return out


def timed_steps(step, batches, warmup: int) -> list[float]:
    for b in batches[:warmup]:
        step(b)
    torch.cuda.synchronize()
    times = []
    for b in batches[warmup:]:
        start = time.perf_counter()
        step(b)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def run_plain(variant: dict, steps: int, warmup: int) -> dict:
    device = torch.device("cuda")
    model = build_model(variant.get("attention", "eager"), device="cuda")
    if variant.get("checkpointing"):
        model.activation_checkpointing_enable()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    dtype = torch.bfloat16 if variant["precision"] == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=variant["precision"] == "fp16")
    mode = variant.get("compile_mode")  # None = torch.compile's default; "reduce-overhead" = CUDA graphs
    forward = torch.compile(model, mode=mode) if variant.get("compile") else model

    def step(b):
        if mode == "reduce-overhead":
            # A new iteration: CUDA-graph trees may reuse the previous step's output memory.
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast("cuda", dtype=dtype):
            logits = forward(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        loss = bce_loss(logits.float(), b["labels"])
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss

    batches = make_batches(warmup + steps, variant["batch"], variant["length"], device)
    torch.cuda.reset_peak_memory_stats()
    times = timed_steps(step, batches, warmup)
    return finish(variant, model, times)


def run_deepspeed(variant: dict, steps: int, warmup: int) -> dict:
    import os

    import deepspeed

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533", "RANK": "0"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    device = torch.device("cuda")
    model = build_model()
    config = {
        "train_micro_batch_size_per_gpu": variant["batch"],
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "bf16": {"enabled": variant["precision"] == "bf16"},
        "fp16": {"enabled": variant["precision"] == "fp16"},
        "zero_optimization": {
            "stage": 2,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_scatter": True,
            "allgather_bucket_size": 200_000_000,
            "reduce_bucket_size": 200_000_000,
        },
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-5, "weight_decay": 0.01}},
    }
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)

    def step(b):
        logits = engine(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        loss = bce_loss(logits.float(), b["labels"])
        engine.backward(loss)
        engine.step()
        return loss

    batches = make_batches(warmup + steps, variant["batch"], variant["length"], device)
    torch.cuda.reset_peak_memory_stats()
    times = timed_steps(step, batches, warmup)
    return finish(variant, model, times)


def finish(variant: dict, model, times: list[float]) -> dict:
    flops = flops_per_step(model, variant["batch"], variant["length"])
    per_step = statistics.median(times)
    return variant | {
        "steps_timed": len(times),
        "step_s_median": round(per_step, 4),
        "step_s_min": round(min(times), 4),
        "step_s_max": round(max(times), 4),
        "examples_per_s": round(variant["batch"] / per_step, 1),
        "tokens_per_s": round(variant["batch"] * variant["length"] / per_step),
        "tflops": round(flops / per_step / 1e12, 1),
        "mfu": round(flops / per_step / 1e12 / peak_tflops(), 3),
        "mfu_min_max": [
            round(flops / max(times) / 1e12 / peak_tflops(), 3),
            round(flops / min(times) / 1e12 / peak_tflops(), 3),
        ],
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


VARIANTS = [
    {"name": "bf16_L128_b32", "precision": "bf16", "length": 128, "batch": 32},
    {"name": "bf16_L128_b64", "precision": "bf16", "length": 128, "batch": 64},
    {"name": "bf16_L256_b32", "precision": "bf16", "length": 256, "batch": 32},
    {"name": "fp16_L128_b64", "precision": "fp16", "length": 128, "batch": 64},
    {"name": "fp16_L256_b32", "precision": "fp16", "length": 256, "batch": 32},
    {"name": "bf16_L256_b32_ckpt", "precision": "bf16", "length": 256, "batch": 32, "checkpointing": True},
    {"name": "bf16_L256_b64", "precision": "bf16", "length": 256, "batch": 64},
    {"name": "bf16_L256_b64_ckpt", "precision": "bf16", "length": 256, "batch": 64, "checkpointing": True},
    {"name": "bf16_L128_b64_compile", "precision": "bf16", "length": 128, "batch": 64, "compile": True},
    {"name": "bf16_L128_b128", "precision": "bf16", "length": 128, "batch": 128},
    {"name": "bf16_L256_b32_compile", "precision": "bf16", "length": 256, "batch": 32, "compile": True},
    {"name": "bf16_L256_b64_compile", "precision": "bf16", "length": 256, "batch": 64, "compile": True},
    {"name": "bf16_L128_b128_compile", "precision": "bf16", "length": 128, "batch": 128, "compile": True},
    {"name": "fp16_L128_b64_compile", "precision": "fp16", "length": 128, "batch": 64, "compile": True},
    # Not run yet (no GPU in the sessions since): CUDA graphs remove the launch gaps measured at batch 32.
    {
        "name": "bf16_L128_b64_compile_cudagraphs",
        "precision": "bf16",
        "length": 128,
        "batch": 64,
        "compile": True,
        "compile_mode": "reduce-overhead",
    },
    {
        "name": "bf16_L256_b64_compile_cudagraphs",
        "precision": "bf16",
        "length": 256,
        "batch": 64,
        "compile": True,
        "compile_mode": "reduce-overhead",
    },
    # Not run yet: emogrid.attention's fused disentangled attention (scaled_dot_product_attention with
    # the position terms as its additive mask, no per-example copies of the position projections).
    {"name": "bf16_L128_b64_sdpa", "precision": "bf16", "length": 128, "batch": 64, "attention": "sdpa"},
    {"name": "bf16_L256_b32_sdpa", "precision": "bf16", "length": 256, "batch": 32, "attention": "sdpa"},
    {"name": "bf16_L256_b64_sdpa", "precision": "bf16", "length": 256, "batch": 64, "attention": "sdpa"},
    {"name": "bf16_L128_b128_sdpa", "precision": "bf16", "length": 128, "batch": 128, "attention": "sdpa"},
    {
        "name": "bf16_L128_b64_sdpa_compile",
        "precision": "bf16",
        "length": 128,
        "batch": 64,
        "attention": "sdpa",
        "compile": True,
    },
    {
        "name": "bf16_L256_b64_sdpa_compile",
        "precision": "bf16",
        "length": 256,
        "batch": 64,
        "attention": "sdpa",
        "compile": True,
    },
    {
        "name": "bf16_L128_b64_sdpa_compile_cudagraphs",
        "precision": "bf16",
        "length": 128,
        "batch": 64,
        "attention": "sdpa",
        "compile": True,
        "compile_mode": "reduce-overhead",
    },
    {"name": "bf16_L256_b32_zero2", "precision": "bf16", "length": 256, "batch": 32, "deepspeed": True},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    results = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "peak_tflops": peak_tflops(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "variants": [],
    }
    try:
        import transformers

        results["transformers"] = transformers.__version__
    except ImportError:
        pass
    for variant in VARIANTS:
        if args.only and variant["name"] not in args.only:
            continue
        try:
            runner = run_deepspeed if variant.get("deepspeed") else run_plain
            row = runner(variant, args.steps, args.warmup)
        except Exception as error:  # report every variant, even when one fails
            row = variant | {"error": repr(error)[-1500:]}
        print(json.dumps(row), flush=True)
        results["variants"].append(row)
        gc.collect()
        torch.cuda.empty_cache()
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
