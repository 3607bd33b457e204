"""The classifier: a pretrained encoder, a pooling choice and one linear layer per label.

Pooling matters: an encoder trained as a mean-pooled sentence encoder (MiniLM) or a randomly
initialised one (the demo's tiny DeBERTa-v3) learns far faster from the mean of its token states
than from the [CLS] state, while DeBERTa-v3 fine-tunes well either way. `cls` takes the first
token's final hidden state; `mean` averages the non-padding tokens.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

ATTENTION_CHOICES = ("transformers", "fused")

POOLINGS = ("cls", "mean")


class EmotionClassifier(nn.Module):
    # Trainer inspects this when it loads a checkpoint of a model that is not a PreTrainedModel.
    _keys_to_ignore_on_save = None
    # The loss is computed outside the model, by EmotionTrainer: Trainer must not treat the model as
    # scaling it for gradient accumulation (transformers#47688). EmotionTrainer also says so itself.
    accepts_loss_kwargs = False

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        # Trainer and DeepSpeed's "auto" values read the hidden size from model.config.
        self.config = encoder.config
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=getattr(encoder.config, "initializer_range", 0.02))
        nn.init.zeros_(self.classifier.bias)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def forward(self, input_ids=None, attention_mask=None, **unused) -> SequenceClassifierOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(
            logits=self.classifier(self.dropout(self.pool(hidden, attention_mask)))
        )

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, **options):
        # Non-reentrant checkpointing works with DDP and with frozen inputs.
        kwargs = activation_checkpointing_kwargs or {"use_reentrant": False}
        if hasattr(self.encoder, "activation_checkpointing_enable"):
            self.encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs, **options)
        else:
            self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def drop_unused_pooler(encoder) -> None:
    """Remove the pooler AutoModel gives BERT-family encoders (BERT, RoBERTa, MiniLM): the classifier
    pools the hidden states itself, so the pooler's weights never get a gradient. Under DDP with
    `ddp_find_unused_parameters=False` (emogrid's setting: every parameter takes part in every step)
    they made the second step fail ("Expected to have finished reduction in the prior iteration"), and
    on one device they only cost a matmul per batch. Only classes built to run without one (their
    `__init__` takes `add_pooling_layer`) lose it."""
    import inspect

    if getattr(encoder, "pooler", None) is not None and (
        "add_pooling_layer" in inspect.signature(type(encoder).__init__).parameters
    ):
        encoder.pooler = None


def position_limit(encoder: nn.Module) -> int | None:
    """The most tokens one input can have for this encoder, or None when nothing limits it.

    Read from the model, not from a list of model types: an encoder with absolute positions (BERT,
    MiniLM, RoBERTa, MPNet, DeBERTa-v2 with position_biased_input) has an `embeddings.position_embeddings`
    table with one row per position, and a longer input fails deep inside the forward pass ("index out
    of range"). RoBERTa-style tables number positions after the padding id, whose row and those below it
    no token can use (514 rows, padding id 1: 512 tokens). DeBERTa-v3 (relative attention only) and
    rotary encoders have no such table.
    """
    table = getattr(getattr(encoder, "embeddings", None), "position_embeddings", None)
    if not isinstance(table, nn.Embedding):
        return None
    unusable = table.padding_idx + 1 if table.padding_idx is not None else 0
    return table.num_embeddings - unusable


def check_max_length(encoder: nn.Module, max_length: int, path: str) -> None:
    """Refuse a model.max_length the encoder has no positions for, before any training step."""
    limit = position_limit(encoder)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"model.max_length: {max_length} is more tokens than {path} has positions for ({limit}, "
            f"its position table); set model.max_length to {limit} or less"
        )


def load_classifier(
    path: str,
    num_labels: int,
    pooling: str,
    dropout: float = 0.1,
    allow_pickle: bool = False,
    attention: str = "transformers",
) -> EmotionClassifier:
    """The encoder from `path` (no remote code, ever) with a fresh classification head.

    Weights load from safetensors. Pickle weights (pytorch_model.bin) can run arbitrary code when
    loaded, so they are used only when the config says the source is trusted (model.allow_pickle_weights).
    `attention`: "transformers" keeps the model's own attention; "fused" switches DeBERTa-v2/v3's
    disentangled attention to emogrid.attention's scaled-dot-product version (same parameters and
    outputs at real tokens; faster on GPUs, docs/BENCHMARKS.md section 5) and refuses other models.
    """
    from pathlib import Path

    from transformers import AutoModel

    from emogrid.hub import check_model_folder

    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"model.attention: {attention!r} is not one of {', '.join(ATTENTION_CHOICES)}")
    if Path(path).is_dir():
        check_model_folder(path, allow_pickle)
    # use_kernels=False: transformers 5.25 turns hub kernels on by default when the `kernels` package is
    # installed (a dependency of transformers now). On a GPU, model.eval() then fetches a kernel from the
    # hub ("kernels-community/activation"): offline (HF_HUB_OFFLINE=1, as on compute nodes) the first
    # evaluation dies, and online a cell would run code downloaded at run time that no pin records.
    # Seen on an H200 on 2026-12-04 (docs/GPU_CHECK.md).
    encoder, loading = AutoModel.from_pretrained(
        path,
        trust_remote_code=False,
        use_safetensors=not allow_pickle or None,
        output_loading_info=True,
        use_kernels=False,
    )
    # transformers initialises weights missing from the checkpoint at random and only logs it: a cell
    # would fine-tune a partly random encoder and report it as the pretrained model. BERT's pooler is
    # the exception: AutoModel adds it, and the classifier pools the hidden states itself.
    missing = sorted(k for k in loading["missing_keys"] if not k.startswith("pooler."))
    mismatched = sorted(str(k) for k in loading.get("mismatched_keys", []))
    if missing or mismatched:
        names = missing + mismatched
        shown = ", ".join(names[:8]) + (f", … {len(names) - 8} more" if len(names) > 8 else "")
        raise ValueError(
            f"{path}: the checkpoint does not hold the whole encoder ({len(missing)} missing, "
            f"{len(mismatched)} of another shape: {shown}); loading it would train a partly random model"
        )
    drop_unused_pooler(encoder)
    if attention == "fused":
        from emogrid.attention import use_sdpa_attention

        if use_sdpa_attention(encoder) == 0:
            raise ValueError(
                f"model.attention: fused: {path} ({type(encoder).__name__}) has no DeBERTa-v2/v3 "
                "disentangled attention to fuse; use model.attention: transformers"
            )
    return EmotionClassifier(encoder, num_labels, pooling=pooling, dropout=dropout)
