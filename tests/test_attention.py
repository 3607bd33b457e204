"""emogrid's fused DeBERTa-v3 attention computes what transformers' module computes."""

import copy

import pytest
import torch

from emogrid.attention import use_sdpa_attention
from emogrid.modeling import EmotionClassifier
from emogrid.tiny_model import tiny_config


def tiny_encoder(dropout=0.0, **overrides):
    from transformers import DebertaV2Model

    torch.manual_seed(0)
    config = tiny_config(vocab_size=300, num_labels=5, dropout=dropout)
    for key, value in overrides.items():
        setattr(config, key, value)
    return DebertaV2Model(config)


def padded_batch():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (3, 40), generator=generator)
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 23:] = 0
    mask[2, 6:] = 0
    return ids, mask


def reference_and_fused(encoder):
    fused = copy.deepcopy(encoder)
    assert use_sdpa_attention(fused) == encoder.config.num_hidden_layers
    return encoder, fused


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        # DeBERTa-v2 style: separate position projections instead of shared keys.
        {"share_att_key": False},
        {"pos_att_type": ["c2p"]},
    ],
    ids=["v3", "v2-separate-position-projections", "c2p-only"],
)
def test_outputs_and_gradients_equal_transformers_attention_at_real_tokens(overrides):
    reference, fused = reference_and_fused(tiny_encoder(**overrides).train())
    ids, mask = padded_batch()
    real = mask.bool()
    out_ref = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    out_fused = fused(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(out_fused[real], out_ref[real], rtol=1e-5, atol=1e-5)
    # Some weight of every kind gets a gradient only through the position terms (rel_embeddings).
    weights = torch.randn(out_ref[real].shape, generator=torch.Generator().manual_seed(2))
    (out_ref[real] * weights).sum().backward()
    (out_fused[real] * weights).sum().backward()
    for (name, p_ref), p_fused in zip(reference.named_parameters(), fused.parameters(), strict=True):
        if p_ref.grad is None:
            assert p_fused.grad is None, name
            continue
        torch.testing.assert_close(p_fused.grad, p_ref.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_classifier_logits_equal_with_padding_for_both_poolings():
    ids, mask = padded_batch()
    for pooling in ("cls", "mean"):
        torch.manual_seed(3)
        classifier = EmotionClassifier(tiny_encoder(), num_labels=5, pooling=pooling).eval()
        fused = copy.deepcopy(classifier)
        use_sdpa_attention(fused)
        torch.testing.assert_close(
            fused(input_ids=ids, attention_mask=mask).logits,
            classifier(input_ids=ids, attention_mask=mask).logits,
            rtol=1e-5,
            atol=1e-5,
        )


def test_state_dict_is_unchanged_so_checkpoints_load_either_way():
    reference, fused = reference_and_fused(tiny_encoder())
    assert list(fused.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(fused.state_dict())


def test_attention_maps_requested_fall_back_to_transformers_attention():
    reference, fused = reference_and_fused(tiny_encoder().eval())
    ids, mask = padded_batch()
    maps_ref = reference(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    maps_fused = fused(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    assert len(maps_fused) == len(maps_ref) == reference.config.num_hidden_layers
    for a, b in zip(maps_fused, maps_ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("attention_dropout", [0.5, 0.0])
def test_attention_dropout_is_applied_in_training_only(attention_dropout):
    # Every other dropout off: two training-mode passes differ only through the fused attention's own.
    encoder = tiny_encoder(dropout=0.0, attention_probs_dropout_prob=attention_dropout)
    _, fused = reference_and_fused(encoder)
    ids, mask = padded_batch()
    fused.eval()
    first = fused(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(fused(input_ids=ids, attention_mask=mask).last_hidden_state, first)
    fused.train()
    torch.manual_seed(4)
    a = fused(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.manual_seed(5)
    b = fused(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(a, b) == (attention_dropout == 0.0)


def test_an_encoder_without_disentangled_attention_is_left_alone():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2))
    classes = [type(m) for m in bert.modules()]
    assert use_sdpa_attention(bert) == 0
    assert [type(m) for m in bert.modules()] == classes
