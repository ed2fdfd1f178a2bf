"""The MoLo head: Wang et al., "MoLo: Motion-augmented Long-short Contrastive Learning for Few-shot Action
Recognition", CVPR 2023.

The original's ``CNN_BiMHM_MoLo`` (``/work/shared/specs/molo_hyrsm.md`` section 2) on per-frame feature maps
``support [S, T, D, h, w]`` and ``query [Q, T, D, h, w]``, vectorised over queries and classes. With ``m = D / 8``:

- **motion branch** (per video): ``r = Conv3d(D, m, 3, pad 1)`` over (T, h, w); ``rc = Conv2d(m, m, 3, pad 1)`` per
  frame; frame-difference features ``f[t] = rc[t+1] - r[t]`` (the later frame through the conv, the earlier not: the
  original's quirk) -> ``[V, T-1, m, h, w]``; motion tokens ``GAP(ReLU(Conv1x1(m -> D)(f)))`` with a learned class
  token in front -> ``ReLU(Transformer_v2(PE(.)))`` ``[V, T, D]``;
- **decoder**: ``f`` -> (bilinear up x s1, Conv3x3 m->128, BN, ReLU) -> (up x s2, Conv3x3 128->32, BN, ReLU) ->
  (up x s3, Conv3x3 32->16, BN, ReLU) -> Conv1x1 16->3 = the predicted RGB frame differences. The original has
  ``(s1, s2, s3) = (2, 4, 4)`` (7x7 maps -> 224 px, i.e. 32 h x 32 w); ``upsample`` sets other factors so that the
  output matches the input frames when the maps are not 1/32 of them (fsar's demo: 4x4 maps of 32 px frames,
  ``upsample=(2, 2, 2)``). Supports and queries are decoded in one batch (BatchNorm statistics over both, as the
  original concatenates them);
- **appearance branch**: ``GAP`` of the maps with a learned class token in front -> ``ReLU(Transformer_v2(PE(.)))``
  ``[V, T+1, D]`` (the same PE module as the motion branch);
- **class logits** ``Linear(D, num_classes)(mean_tokens(appearance) + mean_tokens(motion))`` (class tokens included);
- **prototypes**: per sorted label, the mean over its supports of the whole token sequences;
- **logits** ``-(BiMHM(app) + logit_balance * BiMHM(motion))`` on the local tokens (all but token 0), with the cosine
  ``<x, y> / (|x| |y| + 0.01)`` and sums over frames: exactly fsar's
  :func:`fsar.models.tats.head.bi_mhm_distance` (eps 0.01, sums), which is reused;
- **long-short contrastive logits** ``s2q[q, c] = -scale * sum_t (1 - cos_eps(P_local[c, t], Q_global[q]))`` and
  ``q2s[q, c] = -scale * sum_t (1 - cos_eps(Q_local[q, t], P_global[c]))``, and the motion pair with
  ``scale_motion`` (learnable scalars, init 1).

:func:`molo_loss` is the original's loss (section 2, "Total loss"), with the reconstruction term *not* divided by the
tasks per batch. Parameter names are the original's (:func:`fsar.models.molo.convert_reference_state_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsar.models.hyrsm.head import group_labels
from fsar.models.tats.head import bi_mhm_distance, frame_distances
from fsar.models.temporal_attention import PositionalEncoder, TransformerV2

COSINE_EPS = 0.01
"""MoLo's cosine adds 0.01 to the product of the norms (HyRSM's cosine is exact)."""

ORIGINAL_UPSAMPLE = (2, 4, 4)
DECODER_WIDTHS = (128, 32, 16)


class UpConv(nn.Module):
    """Bilinear up-sampling (``align_corners=True``) then Conv3x3 (no bias), BatchNorm, ReLU (the original's ``Up2``
    with its one-conv ``DoubleConv2``: parameters ``conv.double_conv.{0, 1}``)."""

    def __init__(self, in_channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)
        self.conv = nn.Module()
        self.conv.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=True)
        return self.conv.double_conv(x)


class OutConv(nn.Module):
    """Conv1x1 16 -> 3 with bias (the original's ``OutConv``: parameters ``conv.*``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


@dataclass
class MoLoTokens:
    """The per-video part of MoLo for V videos: ``appearance [V, T+1, D]``, ``motion [V, T, D]`` (token 0 is the
    class token), ``differences [V, T-1, m, h, w]`` (the motion features the decoder reads) and
    ``class_logits [V, num_classes]``."""

    appearance: Tensor
    motion: Tensor
    differences: Tensor
    class_logits: Tensor


@dataclass
class MoLoOutput:
    """All ``[Q, way]`` logits (sorted-label columns), ``class_logits [S+Q, num_classes]`` and
    ``reconstruction [S+Q, T-1, 3, H, W]`` (supports then queries; also computed in eval mode)."""

    logits: Tensor
    logits_s2q: Tensor
    logits_q2s: Tensor
    logits_s2q_motion: Tensor
    logits_q2s_motion: Tensor
    class_logits: Tensor
    reconstruction: Tensor


def frame_differences(frames: Tensor) -> Tensor:
    """The reconstruction target: ``frames [V, T, 3, H, W] -> frames[:, 1:] - frames[:, :-1]`` ``[V, T-1, 3, H, W]``
    (of the normalised input frames, as the original)."""
    if frames.dim() != 5 or frames.shape[1] < 2 or frames.shape[2] != 3:
        raise ValueError(
            f"frame_differences expects RGB frames [videos, T >= 2, 3, H, W]; got {tuple(frames.shape)}"
        )
    return frames[:, 1:] - frames[:, :-1]


class MoLo(nn.Module):
    """The MoLo head on per-frame feature maps.

    Args:
        feat_dim: D (2048 for ResNet-50; a multiple of 8 and of ``num_heads``).
        num_frames: T (8).
        num_classes: base classes of the classification layer (64 for SSv2/K100).
        num_heads: heads of the two temporal transformers (8).
        pos_a, pos_b: the positional encoder's ``sqrt(D / pos_a)`` and ``pos_b`` (10, 1).
        logit_balance: weight of the motion Bi-MHM in the logits (0.3).
        mlp_dim: hidden size of the transformers' feed-forward blocks (2048, the original's fixed value).
        upsample: the decoder's three bilinear factors ((2, 4, 4): 32x, the original's 7 -> 224).
    """

    def __init__(
        self,
        feat_dim: int,
        num_frames: int = 8,
        num_classes: int = 64,
        num_heads: int = 8,
        pos_a: float = 10.0,
        pos_b: float = 1.0,
        logit_balance: float = 0.3,
        mlp_dim: int = 2048,
        upsample: Sequence[int] = ORIGINAL_UPSAMPLE,
    ) -> None:
        super().__init__()
        if feat_dim % 8:
            raise ValueError(
                f"MoLo's motion width is feat_dim / 8: feat_dim must be a multiple of 8; got {feat_dim}"
            )
        if num_frames < 2:
            raise ValueError(f"MoLo needs at least 2 frames (it uses frame differences); got {num_frames}")
        factors = tuple(int(s) for s in upsample)
        if len(factors) != 3 or min(factors) < 1:
            raise ValueError(f"upsample must be three factors >= 1 (original: (2, 4, 4)); got {upsample}")
        d = self.feat_dim = int(feat_dim)
        self.num_frames, self.num_classes = int(num_frames), int(num_classes)
        self.motion_dim = m = d // 8
        self.logit_balance = float(logit_balance)
        self.upsample = factors
        self.scale = nn.Parameter(torch.ones(1))
        self.scale_motion = nn.Parameter(torch.ones(1))
        self.class_token = nn.Parameter(torch.randn(1, 1, d))
        self.class_token_motion = nn.Parameter(torch.randn(1, 1, d))
        self.pe = PositionalEncoder(d, pos_a, pos_b, dropout=0.1)
        self.temporal_atte_before = TransformerV2(d, num_heads, mlp_dim)
        self.temporal_atte_before_motion = TransformerV2(d, num_heads, mlp_dim)
        self.motion_reduce = nn.Conv3d(d, m, kernel_size=3, padding=1)
        self.motion_conv = nn.Conv2d(m, m, kernel_size=3, padding=1)
        self.motion_up = nn.Conv2d(m, d, kernel_size=1)
        self.classification_layer = nn.Linear(d, self.num_classes)
        widths = (m, *DECODER_WIDTHS)
        self.up1 = UpConv(widths[0], widths[1], factors[0])
        self.up2 = UpConv(widths[1], widths[2], factors[1])
        self.up3 = UpConv(widths[2], widths[3], factors[2])
        self.outc = OutConv(widths[3], 3)

    @property
    def output_scale(self) -> int:
        """Decoder output size / map size (32 in the original)."""
        return self.upsample[0] * self.upsample[1] * self.upsample[2]

    # -- per-video part ------------------------------------------------------------------------------------
    def _check_maps(self, maps: Tensor, what: str) -> None:
        if maps.dim() != 5 or maps.shape[1] != self.num_frames or maps.shape[2] != self.feat_dim:
            raise ValueError(
                f"MoLo {what} features must be maps [videos, T={self.num_frames}, D={self.feat_dim}, h, w]; got "
                f"{tuple(maps.shape)}"
            )

    def _with_token(self, token: Tensor, x: Tensor) -> Tensor:
        return torch.cat([token.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)

    def video_tokens(self, maps: Tensor) -> MoLoTokens:
        """Appearance and motion tokens, motion features and class logits of every video ``maps [V, T, D, h, w]``."""
        self._check_maps(maps, "video")
        v, t, _, h, w = maps.shape
        r = self.motion_reduce(maps.transpose(1, 2)).transpose(1, 2)  # [V, T, m, h, w]
        rc = self.motion_conv(r[:, 1:].flatten(0, 1)).reshape(v, t - 1, self.motion_dim, h, w)
        differences = rc - r[:, :-1]  # f[t] = conv(r[t+1]) - r[t]
        motion = torch.relu(self.motion_up(differences.flatten(0, 1))).mean(dim=(2, 3)).reshape(v, t - 1, -1)
        motion = torch.relu(
            self.temporal_atte_before_motion(self.pe(self._with_token(self.class_token_motion, motion)))
        )
        appearance = self._with_token(self.class_token, maps.mean(dim=(3, 4)))
        appearance = torch.relu(self.temporal_atte_before(self.pe(appearance)))
        class_logits = self.classification_layer(appearance.mean(dim=1) + motion.mean(dim=1))
        return MoLoTokens(appearance, motion, differences, class_logits)

    def decode(self, differences: Tensor) -> Tensor:
        """Predicted RGB frame differences: ``[V, T-1, m, h, w] -> [V, T-1, 3, s h, s w]`` (s = :attr:`output_scale`).
        Pass supports and queries together: BatchNorm uses the statistics of the whole batch in train mode."""
        v, steps = differences.shape[:2]
        x = self.outc(self.up3(self.up2(self.up1(differences.flatten(0, 1)))))
        return x.reshape(v, steps, *x.shape[1:])

    # -- episode part --------------------------------------------------------------------------------------
    def episode_logits(
        self,
        support_appearance: Tensor,
        support_motion: Tensor,
        support_labels: Tensor,
        query_appearance: Tensor,
        query_motion: Tensor,
    ) -> dict[str, Tensor]:
        """The five ``[Q, way]`` logits from the token sequences of the support (labels in any order) and queries."""
        if support_labels.shape != support_appearance.shape[:1]:
            raise ValueError(
                f"MoLo needs one label per support video; got {tuple(support_labels.shape)} labels for "
                f"{support_appearance.shape[0]} videos"
            )
        groups = group_labels(support_labels.to(support_appearance.device), support_appearance.dtype)
        proto_app = torch.einsum("cs,sld->cld", groups.weights, support_appearance)  # [C, T+1, D]
        proto_motion = torch.einsum("cs,sld->cld", groups.weights, support_motion)  # [C, T, D]
        dist_app = bi_mhm_distance(query_appearance[:, 1:], proto_app[:, 1:], COSINE_EPS)
        dist_motion = bi_mhm_distance(query_motion[:, 1:], proto_motion[:, 1:], COSINE_EPS)

        def long_short(query: Tensor, proto: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
            s2q = frame_distances(query[:, :1], proto[:, 1:], COSINE_EPS).sum(dim=(2, 3))  # [Q, C]
            q2s = frame_distances(query[:, 1:], proto[:, :1], COSINE_EPS).sum(dim=(2, 3))
            return -scale * s2q, -scale * q2s

        s2q, q2s = long_short(query_appearance, proto_app, self.scale)
        s2q_motion, q2s_motion = long_short(query_motion, proto_motion, self.scale_motion)
        return {
            "logits": -(dist_app + self.logit_balance * dist_motion),
            "logits_s2q": s2q,
            "logits_q2s": q2s,
            "logits_s2q_motion": s2q_motion,
            "logits_q2s_motion": q2s_motion,
        }

    def forward(self, support: Tensor, support_labels: Tensor, query: Tensor) -> MoLoOutput:
        self._check_maps(support, "support")
        self._check_maps(query, "query")
        s = self.video_tokens(support)
        q = self.video_tokens(query)
        logits = self.episode_logits(s.appearance, s.motion, support_labels, q.appearance, q.motion)
        return MoLoOutput(
            **logits,
            class_logits=torch.cat([s.class_logits, q.class_logits], dim=0),
            reconstruction=self.decode(torch.cat([s.differences, q.differences], dim=0)),
        )


LOSS_TERMS = (
    "few_shot",
    "classification",
    "s2q",
    "q2s",
    "s2q_motion",
    "q2s_motion",
    "reconstruction",
    "total",
)


def molo_loss(
    out: MoLoOutput,
    query_labels: Tensor,
    class_labels: Tensor,
    target: Tensor,
    class_weight: float,
    contrastive_weight: float,
    recon_weight: float,
    tasks_per_batch: int = 4,
) -> dict[str, Tensor]:
    """The original's episode loss: every term of :data:`LOSS_TERMS`.

    CE terms are means over the queries (``class_labels [S+Q]``: global labels, for ``classification``);
    ``reconstruction`` = mean squared error between ``out.reconstruction`` and ``target [S+Q, T-1, 3, H, W]``
    (:func:`frame_differences` of the input frames, supports then queries);
    ``total = (few_shot + class_weight * classification) / B + contrastive_weight * (s2q + q2s + s2q_motion +
    q2s_motion) / B + recon_weight * reconstruction`` with ``B = tasks_per_batch`` (the reconstruction term is not
    divided by B, as in the original).
    """
    if tasks_per_batch < 1:
        raise ValueError(f"tasks_per_batch must be >= 1; got {tasks_per_batch}")
    if target.shape != out.reconstruction.shape:
        raise ValueError(
            f"molo_loss: the reconstruction target has shape {tuple(target.shape)} but the decoder gives "
            f"{tuple(out.reconstruction.shape)}; the decoder's output is upsample[0]*upsample[1]*upsample[2] times the "
            "feature map (MoLo(upsample=...)), which must equal the frame size"
        )
    num_classes = out.class_logits.shape[1]
    if class_labels.shape != out.class_logits.shape[:1]:
        raise ValueError(
            f"molo_loss: class_labels must hold one global label per video ({out.class_logits.shape[0]} = S+Q); got "
            f"shape {tuple(class_labels.shape)}"
        )
    bad = (class_labels < 0) | (class_labels >= num_classes)
    if bool(bad.any()):
        raise ValueError(
            f"molo_loss: global class labels must lie in [0, {num_classes}); got {sorted(set(class_labels[bad].tolist()))}. "
            "Set num_classes to the number of training classes and make sure the batches carry global labels"
        )
    labels = query_labels.long()
    terms = {
        "few_shot": F.cross_entropy(out.logits, labels),
        "classification": F.cross_entropy(out.class_logits, class_labels.long()),
        "s2q": F.cross_entropy(out.logits_s2q, labels),
        "q2s": F.cross_entropy(out.logits_q2s, labels),
        "s2q_motion": F.cross_entropy(out.logits_s2q_motion, labels),
        "q2s_motion": F.cross_entropy(out.logits_q2s_motion, labels),
        "reconstruction": F.mse_loss(out.reconstruction, target.to(out.reconstruction.dtype)),
    }
    contrastive = terms["s2q"] + terms["q2s"] + terms["s2q_motion"] + terms["q2s_motion"]
    terms["total"] = (
        (terms["few_shot"] + class_weight * terms["classification"]) / tasks_per_batch
        + contrastive_weight * contrastive / tasks_per_batch
        + recon_weight * terms["reconstruction"]
    )
    return terms
