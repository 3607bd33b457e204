"""Pooling: mean ignores padding, cls takes the first token; loading refuses remote code."""

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from emogrid.modeling import EmotionClassifier, load_classifier


def tiny_encoder():
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertModel(config, add_pooling_layer=False)


def test_mean_pooling_ignores_padding():
    model = EmotionClassifier(tiny_encoder(), num_labels=3, pooling="mean", dropout=0.0).eval()
    hidden = torch.randn(2, 4, 16)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = model.pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(0))


def test_cls_pooling_takes_first_token():
    model = EmotionClassifier(tiny_encoder(), num_labels=3, pooling="cls")
    hidden = torch.randn(2, 4, 16)
    torch.testing.assert_close(model.pool(hidden, torch.ones(2, 4)), hidden[:, 0])


def test_padding_does_not_change_mean_pooled_logits():
    model = EmotionClassifier(tiny_encoder(), num_labels=3, pooling="mean", dropout=0.0).eval()
    ids = torch.tensor([[1, 7, 9, 2]])
    padded = torch.tensor([[1, 7, 9, 2, 0, 0]])
    with torch.no_grad():
        short = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        long = model(
            input_ids=padded, attention_mask=(padded != 0).long() | (torch.arange(6) < 4).long()
        ).logits
    torch.testing.assert_close(short, long, rtol=1e-5, atol=1e-5)


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="pooling"):
        EmotionClassifier(tiny_encoder(), num_labels=3, pooling="max")


@pytest.mark.parametrize("family", ["bert", "deberta-v3"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_every_trainable_parameter_gets_a_gradient(tmp_path, tiny_corpus, family, pooling):
    """What `ddp_find_unused_parameters=False` relies on: a parameter without a gradient makes DDP's
    second step fail. BERT-family encoders came with AutoModel's pooler, which the classifier never
    used (with a pooler, as the saved MiniLM has, this test fails without emogrid's fix)."""
    if family == "bert":
        BertModel(tiny_encoder().config, add_pooling_layer=True).save_pretrained(tmp_path / "m")
        path = str(tmp_path / "m")
    else:
        path = str(tiny_corpus["model_dir"])
    model = load_classifier(path, num_labels=4, pooling=pooling).train()
    ids = torch.tensor([[1, 7, 9, 2, 0], [1, 5, 6, 8, 2]])
    logits = model(input_ids=ids, attention_mask=(ids != 0).long()).logits
    logits.sum().backward()
    without = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert without == []


def test_load_classifier_reads_safetensors_encoder(tmp_path):
    encoder = tiny_encoder()
    encoder.save_pretrained(tmp_path)
    assert list(tmp_path.glob("*.safetensors"))
    model = load_classifier(str(tmp_path), num_labels=5, pooling="mean")
    assert model.classifier.out_features == 5
    saved = encoder.state_dict()
    loaded = model.encoder.state_dict()
    # Every saved weight is loaded (AutoModel's pooler for BERT is dropped: the classifier pools itself).
    assert set(saved) == set(loaded)
    for name, tensor in saved.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)


def test_loaded_encoder_never_switches_to_hub_kernels(tmp_path):
    """transformers 5.25 loads models with hub kernels on, and eval() on a GPU then fetches one from the
    hub (offline: the first evaluation dies). load_classifier turns them off; train()/eval() keep it so."""
    tiny_encoder().save_pretrained(tmp_path)
    model = load_classifier(str(tmp_path), num_labels=5, pooling="mean")
    model.train()
    model.eval()
    assert model.encoder.use_kernels is False
    assert getattr(model.encoder, "_kernels_mode", None) is None


def test_a_checkpoint_missing_encoder_weights_is_refused_not_filled_at_random(tmp_path):
    from safetensors.torch import load_file, save_file

    encoder = tiny_encoder()
    encoder.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    dropped = [k for k in state if k.startswith("encoder.layer.0.attention.self.query.")]
    assert dropped
    save_file({k: v for k, v in state.items() if k not in dropped}, weights, metadata={"format": "pt"})
    with pytest.raises(
        ValueError, match=r"2 missing.*encoder\.layer\.0\.attention\.self\.query.*partly random"
    ):
        load_classifier(str(tmp_path), num_labels=5, pooling="mean")


def test_loading_never_runs_code_shipped_with_the_model(tiny_corpus, tmp_path):
    """A model folder whose config and tokenizer config point at their own Python code (`auto_map`):
    loading uses transformers' own classes and never imports that code."""
    import json
    import shutil

    from emogrid.tokenize import load_declared_tokenizer, load_tokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_corpus["model_dir"], folder)
    marker = tmp_path / "remote_code_ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    for name, auto_map in [
        ("config.json", {"AutoConfig": "evil.Config", "AutoModel": "evil.Model"}),
        ("tokenizer_config.json", {"AutoTokenizer": ["evil.Tokenizer", "evil.Tokenizer"]}),
    ]:
        settings = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(settings | {"auto_map": auto_map}))
    model = load_classifier(str(folder), num_labels=28, pooling="mean")
    tokenizer = load_tokenizer(folder)
    declared = load_declared_tokenizer(folder)
    assert type(model.encoder).__name__ == "DebertaV2Model"
    assert tokenizer("a test")["input_ids"] == declared("a test")["input_ids"] != []
    assert not marker.exists(), "the model folder's own code was imported"


def test_tiny_model_built_in_three_jobs_equals_the_one_step_build(tmp_path, labels):
    """The workflow builds the tiny tokenizer and the weights as two independent jobs and then copies
    both into the model folder; that folder is the one `build_tiny_deberta` writes in one go."""
    from emogrid.tiny_model import (
        TINY_VOCAB_SIZE,
        assemble_tiny_model,
        build_tiny_deberta,
        build_tiny_tokenizer,
        build_tiny_weights,
    )
    from emogrid.tokenize import load_tokenizer

    texts = [f"{word} feels {mood} today" for word in ("she", "he", "we", "they") for mood in labels] * 3
    tokenizer_dir = build_tiny_tokenizer(texts, tmp_path / "tokenizer")
    assert not (tokenizer_dir / "model.safetensors").exists()
    weights_dir = build_tiny_weights(labels, tmp_path / "weights", seed=3)
    assert not (weights_dir / "tokenizer.json").exists()
    for folder in (tokenizer_dir, weights_dir):  # as Snakemake marks a directory output
        (folder / ".snakemake_timestamp").touch()
    assembled = assemble_tiny_model(weights_dir, tokenizer_dir, tmp_path / "model")
    one_step = build_tiny_deberta(texts, labels, tmp_path / "together", seed=3)
    names = sorted(p.name for p in assembled.iterdir())
    assert names == sorted(p.name for p in one_step.iterdir())
    assert {"spm.model", "tokenizer.json", "config.json", "model.safetensors"} <= set(names)
    for name in names:
        assert (assembled / name).read_bytes() == (one_step / name).read_bytes(), name
    assert not (assembled / ".snakemake_timestamp").exists()
    for path in [*tokenizer_dir.glob("[!.]*"), *weights_dir.glob("[!.]*")]:
        assert (assembled / path.name).read_bytes() == path.read_bytes(), path.name
    # The small corpus gives fewer pieces than the fixed embedding table has rows; the model runs.
    model = load_classifier(str(assembled), num_labels=len(labels), pooling="mean")
    tokenizer = load_tokenizer(assembled)
    assert len(tokenizer) < TINY_VOCAB_SIZE == model.encoder.get_input_embeddings().num_embeddings
    batch = tokenizer(texts[:4], padding=True, return_tensors="pt")
    assert model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.shape == (
        4,
        len(labels),
    )


def test_assembling_the_tiny_model_refuses_parts_that_do_not_fit(tmp_path, labels):
    from emogrid.tiny_model import (
        assemble_tiny_model,
        build_tiny_tokenizer,
        build_tiny_weights,
        largest_token_id,
    )

    texts = [f"{word} feels {mood}" for word in ("she", "he") for mood in labels] * 3
    tokenizer_dir = build_tiny_tokenizer(texts, tmp_path / "tokenizer")
    weights_dir = build_tiny_weights(labels, tmp_path / "weights")
    config = json.loads((weights_dir / "config.json").read_text())
    largest = largest_token_id(tokenizer_dir)
    assert largest == len(json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"]) - 1
    (weights_dir / "config.json").write_text(json.dumps(config | {"vocab_size": largest}))
    fits = rf"ids up to {largest}, but the weights in .*weights have {largest} embedding rows"
    with pytest.raises(ValueError, match=fits):
        assemble_tiny_model(weights_dir, tokenizer_dir, tmp_path / "model")
    assert not (tmp_path / "model").exists(), "nothing is written when the parts do not fit"
    (weights_dir / "config.json").write_text(json.dumps(config))
    (weights_dir / "spm.model").write_bytes(b"not the tokenizer's")
    with pytest.raises(ValueError, match=r"both have \['spm.model'\]"):
        assemble_tiny_model(weights_dir, tokenizer_dir, tmp_path / "model")
    (weights_dir / "spm.model").unlink()
    # An added token past the vocabulary counts too.
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    spec["added_tokens"].append({"id": config["vocab_size"], "content": "[EXTRA]"})
    (tokenizer_dir / "tokenizer.json").write_text(json.dumps(spec))
    assert largest_token_id(tokenizer_dir) == config["vocab_size"]
    with pytest.raises(ValueError, match=rf"ids up to {config['vocab_size']}"):
        assemble_tiny_model(weights_dir, tokenizer_dir, tmp_path / "model")
    (weights_dir / "config.json").unlink()
    with pytest.raises(ValueError, match=r"weights/config.json: no readable vocab_size"):
        assemble_tiny_model(weights_dir, tokenizer_dir, tmp_path / "model")
    (weights_dir / "config.json").write_text(json.dumps(config))
    (tokenizer_dir / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"tokenizer.json: not a readable tokenizer.json"):
        assemble_tiny_model(weights_dir, tokenizer_dir, tmp_path / "model")


def test_fused_attention_loads_for_deberta_with_the_same_outputs(tmp_path, labels):
    from emogrid.tiny_model import build_tiny_weights

    build_tiny_weights(labels, tmp_path, dropout=0.0)
    reference = load_classifier(str(tmp_path), num_labels=len(labels), pooling="cls").eval()
    fused = load_classifier(str(tmp_path), num_labels=len(labels), pooling="cls", attention="fused").eval()

    def kinds(model):
        return [type(layer.attention.self).__name__ for layer in model.encoder.encoder.layer]

    assert set(kinds(reference)) == {"DisentangledSelfAttention"}
    assert set(kinds(fused)) == {"SdpaDisentangledSelfAttention"}
    ids = torch.tensor([[1, 40, 41, 42, 43, 2], [1, 50, 51, 2, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = reference.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fused.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-5)


def test_fused_attention_is_refused_for_models_without_deberta_attention(tmp_path):
    tiny_encoder().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model.attention: fused.*BertModel"):
        load_classifier(str(tmp_path), num_labels=5, pooling="mean", attention="fused")
    with pytest.raises(ValueError, match="model.attention: 'flash'"):
        load_classifier(str(tmp_path), num_labels=5, pooling="mean", attention="flash")


def _encoder_of(model_type: str, **settings):
    """A one-layer encoder of `model_type` with a small position table."""
    from transformers import AutoConfig, AutoModel

    sizes = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    if model_type == "distilbert":
        sizes = {"dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 32}
    config = AutoConfig.for_model(model_type, vocab_size=50, **sizes, **settings)
    return AutoModel.from_config(config).eval()


def _runs_at(encoder, length: int) -> bool:
    ids = torch.full((1, length), 5)
    try:
        with torch.no_grad():
            encoder(input_ids=ids, attention_mask=torch.ones_like(ids))
    except (IndexError, RuntimeError):
        return False
    return True


@pytest.mark.parametrize(
    "model_type, settings",
    [
        ("bert", {"max_position_embeddings": 24}),
        ("distilbert", {"max_position_embeddings": 24}),
        ("albert", {"max_position_embeddings": 24, "embedding_size": 8}),
        # Positions numbered after the padding id: 26 rows, padding id 1, 24 usable.
        ("roberta", {"max_position_embeddings": 26, "pad_token_id": 1}),
        ("mpnet", {"max_position_embeddings": 26, "pad_token_id": 1}),
        ("deberta-v2", {"max_position_embeddings": 24, "position_biased_input": True}),
    ],
)
def test_position_limit_is_where_the_encoder_stops_running(model_type, settings):
    """The limit check_max_length enforces is the real one: the encoder runs at it and fails one past it."""
    from emogrid.modeling import check_max_length, position_limit

    encoder = _encoder_of(model_type, **settings)
    limit = position_limit(encoder)
    assert limit == 24
    assert _runs_at(encoder, limit)
    assert not _runs_at(encoder, limit + 1)
    check_max_length(encoder, limit, "m")
    refused = rf"model\.max_length: {limit + 1} .*set model\.max_length to {limit}"
    with pytest.raises(ValueError, match=refused):
        check_max_length(encoder, limit + 1, "m")


def test_deberta_v3_relative_positions_have_no_limit():
    from emogrid.modeling import check_max_length, position_limit

    encoder = _encoder_of(
        "deberta-v2",
        max_position_embeddings=24,
        relative_attention=True,
        position_buckets=8,
        position_biased_input=False,
        pos_att_type=["p2c", "c2p"],
    )
    assert position_limit(encoder) is None
    assert _runs_at(encoder, 60)
    check_max_length(encoder, 60, "m")
