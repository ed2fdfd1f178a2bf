"""MoLo written as loops, as the equations read: the check and the benchmark baseline of the vectorised head.

Wang et al., "MoLo: Motion-augmented Long-short Contrastive Learning for Few-shot Action Recognition", CVPR 2023
(``/work/shared/specs/molo_hyrsm.md`` section 2). It uses the parameters of a :class:`fsar.models.molo.MoLo` but
none of its code: video by video and frame by frame convolutions, the frame-difference features ``conv(r[t+1]) -
r[t]``, attention head by head (:mod:`fsar.models.hyrsm.loop`), prototypes and Bi-MHM class by class and query by
query with the 0.01-epsilon cosine pair by pair, the contrastive sums token by token, and the decoder sample by sample
with BatchNorm written out (batch statistics over all decoded frames in train mode, running statistics in eval
mode). Dropout must be off (eval mode, or p = 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fsar.models.hyrsm.loop import loop_bi_mhm, loop_positional_encoding, loop_self_attention
from fsar.models.molo.head import MoLo

EPS = 0.01


def _cos_eps(a: Tensor, b: Tensor) -> Tensor:
    return torch.dot(a, b) / (a.norm() * b.norm() + EPS)


def _transformer(x: Tensor, transformer, num_heads: int) -> Tensor:
    attention, ffn = transformer.layers[0]
    x = loop_self_attention(x, attention, num_heads)
    first, last = ffn.net[0], ffn.net[3]
    return x + F.gelu(x @ first.weight.T + first.bias) @ last.weight.T + last.bias


def _batch_norm(xs: list[Tensor], bn, training: bool) -> list[Tensor]:
    """BatchNorm2d of samples ``[C, H, W]``: batch statistics over all of them (train) or running ones (eval)."""
    if training:
        stacked = torch.stack(xs)
        mean = stacked.mean(dim=(0, 2, 3))
        var = ((stacked - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = (bn.weight / torch.sqrt(var + bn.eps))[:, None, None]
    return [(x - mean[:, None, None]) * scale + bn.bias[:, None, None] for x in xs]


def _decode(head: MoLo, features: list[Tensor]) -> list[Tensor]:
    xs = features
    for up in (head.up1, head.up2, head.up3):
        conv, bn = up.conv.double_conv[0], up.conv.double_conv[1]
        xs = [
            F.conv2d(
                F.interpolate(x[None], scale_factor=up.scale, mode="bilinear", align_corners=True),
                conv.weight,
                padding=1,
            )[0]
            for x in xs
        ]
        xs = [torch.relu(x) for x in _batch_norm(xs, bn, head.training)]
    out = head.outc.conv
    return [F.conv2d(x[None], out.weight, out.bias)[0] for x in xs]


def molo_loop_video(head: MoLo, maps: Tensor) -> tuple[Tensor, Tensor, list[Tensor], Tensor]:
    """One video ``[T, D, h, w]`` -> (appearance tokens [T+1, D], motion tokens [T, D], T-1 motion feature maps,
    class logits)."""
    heads = head.temporal_atte_before.layers[0][0].fn.num_heads
    pos_a, pos_b = head.pe.pos_a, head.pe.pos_b
    t = maps.shape[0]
    r = F.conv3d(maps.transpose(0, 1)[None], head.motion_reduce.weight, head.motion_reduce.bias, padding=1)[0]
    r = r.transpose(0, 1)  # [T, m, h, w]
    conv = head.motion_conv
    differences = [
        F.conv2d(r[i + 1][None], conv.weight, conv.bias, padding=1)[0] - r[i] for i in range(t - 1)
    ]
    up = head.motion_up
    tokens = [head.class_token_motion[0, 0]]
    for f in differences:
        per_pixel = torch.einsum("dm,mhw->dhw", up.weight[:, :, 0, 0], f) + up.bias[:, None, None]
        tokens.append(torch.relu(per_pixel).mean(dim=(1, 2)))
    motion = torch.relu(
        _transformer(
            loop_positional_encoding(torch.stack(tokens), pos_a, pos_b),
            head.temporal_atte_before_motion,
            heads,
        )
    )
    frames = [head.class_token[0, 0]] + [maps[i].mean(dim=(1, 2)) for i in range(t)]
    appearance = torch.relu(
        _transformer(
            loop_positional_encoding(torch.stack(frames), pos_a, pos_b), head.temporal_atte_before, heads
        )
    )
    linear = head.classification_layer
    class_logits = (appearance.mean(dim=0) + motion.mean(dim=0)) @ linear.weight.T + linear.bias
    return appearance, motion, differences, class_logits


def molo_loop_logits(
    head: MoLo,
    support: list[tuple[Tensor, Tensor]],
    support_labels: Tensor,
    query: list[tuple[Tensor, Tensor]],
) -> dict[str, Tensor]:
    """The five ``[Q, way]`` logits from each video's (appearance, motion) tokens, class by class, query by query."""
    labels = [int(v) for v in support_labels.tolist()]
    classes = sorted(set(labels))

    def prototype(c: int, part: int) -> Tensor:
        mine = [support[i][part] for i, y in enumerate(labels) if y == c]
        return sum(mine) / len(mine)

    protos = [(prototype(c, 0), prototype(c, 1)) for c in classes]
    names = ("logits", "logits_s2q", "logits_q2s", "logits_s2q_motion", "logits_q2s_motion")
    out: dict[str, list] = {k: [] for k in names}
    for app, motion in query:
        rows: dict[str, list] = {k: [] for k in names}
        for p_app, p_motion in protos:
            app_dist = loop_bi_mhm(app[1:], p_app[1:], EPS)
            rows["logits"].append(
                -(app_dist + head.logit_balance * loop_bi_mhm(motion[1:], p_motion[1:], EPS))
            )
            for suffix, q_tokens, p_tokens, scale in (
                ("", app, p_app, head.scale[0]),
                ("_motion", motion, p_motion, head.scale_motion[0]),
            ):
                s2q = sum(1 - _cos_eps(p_tokens[i], q_tokens[0]) for i in range(1, p_tokens.shape[0]))
                q2s = sum(1 - _cos_eps(q_tokens[i], p_tokens[0]) for i in range(1, q_tokens.shape[0]))
                rows["logits_s2q" + suffix].append(-scale * s2q)
                rows["logits_q2s" + suffix].append(-scale * q2s)
        for k, row in rows.items():
            out[k].append(torch.stack(row))
    return {k: torch.stack(v) for k, v in out.items()}


def molo_loop_output(head: MoLo, support: Tensor, support_labels: Tensor, query: Tensor) -> dict[str, Tensor]:
    """Every output of ``head`` (the :class:`fsar.models.molo.MoLoOutput` fields) with loops."""
    videos = [molo_loop_video(head, v) for v in torch.cat([support, query])]
    n_support = support.shape[0]
    tokens = [(v[0], v[1]) for v in videos]
    result = molo_loop_logits(head, tokens[:n_support], support_labels, tokens[n_support:])
    result["class_logits"] = torch.stack([v[3] for v in videos])
    decoded = _decode(head, [f for v in videos for f in v[2]])
    steps = support.shape[1] - 1
    result["reconstruction"] = torch.stack(
        [torch.stack(decoded[i * steps : (i + 1) * steps]) for i in range(len(videos))]
    )
    return result
