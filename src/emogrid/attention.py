"""DeBERTa-v2/v3's disentangled self-attention through `torch.nn.functional.scaled_dot_product_attention`.

transformers 5.24 runs DeBERTa's attention as separate kernels: the content scores, the content-to-
position and position-to-content scores (each a batched matmul against the relative-position
projections, which it first copies once per example with `.repeat`), their sum, the mask, softmax,
dropout and the product with the values. Here the two position terms are computed with broadcasting
(no per-example copies) and added to the content scores as the additive mask of one fused
scaled-dot-product-attention call, which does the scores, softmax, dropout and value product together.

The model is the same: same parameters, same scores (checked against transformers' module in
tests/test_attention.py, outputs and gradients). Padding is handled as a key mask. In transformers'
module a padding *query* attends uniformly to every key; here it attends to the real keys. Those
positions never reach a real token (padding keys are masked in every layer) nor the pooled output, so
what the model computes for real tokens is unchanged.

In the workflow as `model.attention: fused` (emogrid.modeling.load_classifier switches the encoder).
On an H200 in bf16 it trained DeBERTa-v3-large 1.19-1.36x faster than transformers' module in eager
mode (`bench/gpu_mfu.py`, its `*_sdpa` variants; docs/BENCHMARKS.md, section 5); on the 2-core CPU it
gives no speed-up, as the dense layers dominate there.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F


def _reference_class():
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

    return DisentangledSelfAttention


@functools.cache
def _fused_class():
    reference = _reference_class()
    return type(
        "SdpaDisentangledSelfAttention",
        (reference,),
        {"forward": sdpa_forward, "eager_forward": reference.forward, "__module__": __name__},
    )


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[batch, length, heads * d] -> [batch, heads, length, d] (a view, no copy)."""
    return x.view(*x.shape[:-1], heads, -1).transpose(-3, -2)


def sdpa_forward(
    self,
    hidden_states,
    attention_mask,
    output_attentions=False,
    query_states=None,
    relative_pos=None,
    rel_embeddings=None,
):
    """Forward of `DisentangledSelfAttention` with the same signature and parameters, fused."""
    length = hidden_states.size(-2)
    per_example_positions = relative_pos is not None and relative_pos.numel() != length * length
    if output_attentions or query_states is not None or per_example_positions:
        # Attention maps, separate query states and per-example relative positions are not used for
        # classification: transformers' implementation serves them.
        return type(self).eager_forward(
            self, hidden_states, attention_mask, output_attentions, query_states, relative_pos, rel_embeddings
        )
    heads = self.num_attention_heads
    query = _heads(self.query_proj(hidden_states), heads)
    key = _heads(self.key_proj(hidden_states), heads)
    value = _heads(self.value_proj(hidden_states), heads)
    factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    scale = 1.0 / math.sqrt(query.size(-1) * factor)

    # The encoder hands every layer a [batch, 1, query, key] mask. A key is real if any query may attend
    # to it: every real query then sees exactly the keys that transformers' module lets it see.
    key_mask = attention_mask.bool().any(dim=-2, keepdim=True)
    bias = None
    if self.relative_attention:
        bias = relative_position_scores(self, query, key, relative_pos, self.pos_dropout(rel_embeddings))
    if bias is None:
        bias = torch.zeros((), dtype=query.dtype, device=query.device)
    bias = (bias * scale).masked_fill(~key_mask, float("-inf"))
    context = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=bias.to(query.dtype),
        dropout_p=self.dropout.p if self.training else 0.0,
        scale=scale,
    )
    context = context.transpose(-3, -2).reshape(*hidden_states.shape[:-1], -1)
    return context, None


def relative_position_scores(self, query, key, relative_pos, rel_embeddings) -> torch.Tensor | None:
    """content->position plus position->content scores, [batch, heads, length, length], unscaled."""
    length = query.size(-2)
    if relative_pos is None:
        from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

        relative_pos = build_relative_position(
            query, key, bucket_size=self.position_buckets, max_position=self.max_relative_positions
        )
    relative_pos = relative_pos.to(device=query.device, dtype=torch.long).reshape(length, length)
    span = self.pos_ebd_size
    rel_embeddings = rel_embeddings[: 2 * span].unsqueeze(0)
    heads = self.num_attention_heads
    if self.share_att_key:
        key_proj, query_proj = self.key_proj, self.query_proj
    else:
        key_proj, query_proj = getattr(self, "pos_key_proj", None), getattr(self, "pos_query_proj", None)
    # The position projections are [1, heads, 2 * span, d] and broadcast over the batch: no copies.
    scores = None
    if "c2p" in self.pos_att_type:
        pos_key = _heads(key_proj(rel_embeddings), heads)
        index = torch.clamp(relative_pos + span, 0, 2 * span - 1)
        c2p = torch.matmul(query, pos_key.transpose(-1, -2))
        scores = torch.gather(c2p, -1, index.expand(*c2p.shape[:-1], length))
    if "p2c" in self.pos_att_type:
        pos_query = _heads(query_proj(rel_embeddings), heads)
        index = torch.clamp(-relative_pos + span, 0, 2 * span - 1)
        p2c = torch.matmul(key, pos_query.transpose(-1, -2))
        p2c = torch.gather(p2c, -1, index.expand(*p2c.shape[:-1], length)).transpose(-1, -2)
        scores = p2c if scores is None else scores + p2c
    return scores


def use_sdpa_attention(encoder: nn.Module) -> int:
    """Switch every DeBERTa-v2/v3 self-attention module of `encoder` to `sdpa_forward`, in place.

    Parameters, their names and the state dict are unchanged (checkpoints load either way). Returns
    the number of modules switched; 0 for an encoder without DeBERTa's disentangled attention.
    """
    reference, fused = _reference_class(), _fused_class()
    count = 0
    for module in encoder.modules():
        if type(module) is reference:
            module.__class__ = fused
            count += 1
    return count
