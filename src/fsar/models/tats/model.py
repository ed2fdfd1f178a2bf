"""The TATs network: positional embeddings, trajectory-aligned tokens, masked space-time transformer, CLS head.

Kumar et al., "Trajectory-aligned Space-time Tokens for Few-shot Action Recognition", ECCV 2024
(reference code ``pulkitkumar95/tats``, class ``Pointformer``; our spec: tats.md sections 3-4).

Per video: ``F [T, G, G, D]`` (frozen patch features) gets ``space_pos[i * G + j] + time_pos[t]`` added,
then one token per frame and tracked point is sampled (:mod:`fsar.models.tats.sampling`), giving
``X [T, N, D]``; a learned CLS token joins them, ``depth`` masked divided space-time blocks
(:mod:`fsar.models.tats.block`) and a final LayerNorm follow. Outputs: ``cls_logits = head(tanh(
pre_logits(cls)))`` (base-class logits) and the point ``tokens [T, N, D]`` (post-LayerNorm) used by the
few-shot head.

Parameter names differ from the reference; :func:`fsar.models.tats.convert.convert_reference_state_dict`
maps a reference checkpoint onto this module. The reference's ``spatial_pos_embed`` is never used on its
default path (tats.md section 8, item 9), so it is not created here and the converter drops it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fsar.models.tats.block import DividedSpaceTimeBlock
from fsar.models.tats.sampling import SAMPLING_MODES, sample_tokens


@dataclass
class TATsOutput:
    """``cls_logits [B, num_classes]`` and point ``tokens [B, T, N, D]``."""

    cls_logits: Tensor
    tokens: Tensor


class TATs(nn.Module):
    """Trajectory-aligned space-time tokens + masked divided space-time transformer.

    ``model(features, tracks, query_mask, visibility=None) -> TATsOutput`` with

    - ``features [B, T, G, G, D]``: patch grid, row index = image row (y), column index = image column (x);
    - ``tracks [B, T, N, 2]``: point positions ``(u, v) = (2x/W - 1, 2y/H - 1)`` (see
      :mod:`fsar.models.tats.sampling` for how they map onto patches);
    - ``query_mask [B, T, N]`` bool: True where the point exists (frame >= its query frame). Masked tokens
      are excluded from the attention keys. Every point must exist in at least one frame (ValueError
      otherwise: the temporal attention of that trajectory would have no keys).
    - ``visibility [B, T, N]`` bool: tracker visibility, needed iff ``mask_occluded``. Then the key mask is
      ``query_mask & visibility``; a point that is never visible gets a zero temporal attention output
      (see :class:`~fsar.models.tats.block.MaskedSelfAttention`).

    Args:
        feat_dim: width D (768 for DINOv2 ViT-B/14).
        num_frames: T, the size of the temporal positional embedding (8 for SSv2, 16 for K100).
        num_points: N expected in ``tracks``; ``None`` accepts any N (N enters no parameter shape).
        num_classes: base classes of the CLS head (64).
        depth, num_heads, mlp_ratio: transformer shape (1, 8, 4.0 in the original).
        grid_size: G, the side of the patch grid (16 for 224 px and patch 14).
        sampling: ``"nearest_reference"`` (original): cell ``(rint((v+1)/2*(G-1)), rint((u+1)/2*(G-1)))``,
            round half to even, zero vector outside the grid; or ``"bilinear"``: bilinear between patch
            centres ``u = 2*(j+0.5)/G - 1``, clamped to the border patch inside the image, zero outside it.
        mask_occluded: also mask occluded (visibility False) key positions.
        init_seed: seed of the random initialisation (a private ``torch.Generator``; global RNG untouched).
        device: where to create the parameters; ``"meta"`` builds shapes only (no initialisation).

    Initialisation (tats.md section 4): linear weights trunc-normal(std 0.02), biases 0, LayerNorm 1 / 0;
    ``cls_token [1, 1, D]``, ``space_pos [1, G*G, D]``, ``time_pos [1, T, D]`` Xavier-uniform with torch's fan
    rules for these 3-d shapes (bounds 0.0625, 0.00551, 0.0295 for D=768, G=16, T=8).
    """

    def __init__(
        self,
        feat_dim: int = 768,
        num_frames: int = 8,
        num_points: int | None = 256,
        num_classes: int = 64,
        depth: int = 1,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        grid_size: int = 16,
        sampling: str = "nearest_reference",
        mask_occluded: bool = False,
        norm_eps: float = 1e-6,
        init_seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling {sampling!r}; expected one of {SAMPLING_MODES}")
        sizes = {"feat_dim": feat_dim, "num_frames": num_frames, "num_classes": num_classes, "depth": depth}
        sizes.update(num_heads=num_heads, grid_size=grid_size)
        for name, value in sizes.items():
            if int(value) < 1:
                raise ValueError(f"TATs: {name} must be >= 1; got {value}")
        self.feat_dim = feat_dim
        self.num_frames = num_frames
        self.num_points = num_points
        self.num_classes = num_classes
        self.grid_size = grid_size
        self.sampling = sampling
        self.mask_occluded = mask_occluded

        # Build on the meta device first: no global RNG is consumed by default initialisers.
        meta = torch.device("meta")
        self.cls_token = nn.Parameter(torch.empty(1, 1, feat_dim, device=meta))
        self.space_pos = nn.Parameter(torch.empty(1, grid_size * grid_size, feat_dim, device=meta))
        self.time_pos = nn.Parameter(torch.empty(1, num_frames, feat_dim, device=meta))
        self.blocks = nn.ModuleList(
            DividedSpaceTimeBlock(feat_dim, num_heads, mlp_ratio, norm_eps, device=meta) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(feat_dim, eps=norm_eps, device=meta)
        self.pre_logits = nn.Linear(feat_dim, feat_dim, device=meta)
        self.head = nn.Linear(feat_dim, num_classes, device=meta)

        target = torch.device(device) if device is not None else torch.device("cpu")
        if target.type != "meta":
            self.to_empty(device=target)
            self.reset_parameters(init_seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Initialise every parameter as the reference does, from a generator seeded with ``seed``."""
        gen = torch.Generator(device=self.cls_token.device).manual_seed(seed)
        # Only the TATs modules (same order as ``self.modules()`` for a plain TATs): a subclass that adds
        # modules (Trokens' motion embeddings) initialises those itself and keeps this part identical.
        own = (self.blocks, self.norm, self.pre_logits, self.head)
        for module in (m for part in own for m in part.modules()):
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, generator=gen)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for param in (self.cls_token, self.space_pos, self.time_pos):
            nn.init.xavier_uniform_(param, generator=gen)

    # ------------------------------------------------------------------------------------------------
    def check_inputs(
        self, features: Tensor, tracks: Tensor, query_mask: Tensor, visibility: Tensor | None = None
    ) -> None:
        """Raise a ValueError naming the offending argument when shapes or values are wrong."""
        if features.dim() != 5:
            raise ValueError(f"TATs: features must be [B, T, G, G, D]; got shape {tuple(features.shape)}")
        b, t, g1, g2, d = features.shape
        if (g1, g2, d) != (self.grid_size, self.grid_size, self.feat_dim):
            raise ValueError(
                f"TATs: features [B, T, G, G, D] = {tuple(features.shape)} do not match the model "
                f"(grid_size={self.grid_size}, feat_dim={self.feat_dim})"
            )
        if t != self.num_frames:
            raise ValueError(
                f"TATs: features have T={t} frames but the model was built with num_frames={self.num_frames} "
                "(the size of time_pos)"
            )
        if tracks.dim() != 4 or tracks.shape[:2] != (b, t) or tracks.shape[-1] != 2:
            raise ValueError(f"TATs: tracks must be [B={b}, T={t}, N, 2]; got {tuple(tracks.shape)}")
        n = tracks.shape[2]
        if self.num_points is not None and n != self.num_points:
            raise ValueError(
                f"TATs: tracks have N={n} points but the model expects num_points={self.num_points}"
            )
        if not bool(torch.isfinite(tracks).all()):
            raise ValueError("TATs: tracks contain NaN or infinite coordinates; fix the track file(s)")
        if query_mask.shape != (b, t, n) or query_mask.dtype != torch.bool:
            raise ValueError(
                f"TATs: query_mask must be a bool tensor [B={b}, T={t}, N={n}]; got "
                f"{query_mask.dtype} {tuple(query_mask.shape)}"
            )
        exists = query_mask.any(dim=1)  # [B, N]
        if not bool(exists.all()):
            vid, point = (~exists).nonzero()[0].tolist()
            raise ValueError(
                f"TATs: point {point} of video {vid} (position in the batch) is masked in all {t} frames "
                "(its query frame is after the last sampled frame), so its temporal attention has no keys; "
                "fix the frame sampling or the query frames of the track file"
            )
        if self.mask_occluded:
            if visibility is None:
                raise ValueError("TATs: mask_occluded=True needs the visibility [B, T, N] argument")
            if visibility.shape != (b, t, n) or visibility.dtype != torch.bool:
                raise ValueError(
                    f"TATs: visibility must be a bool tensor [B={b}, T={t}, N={n}]; got "
                    f"{visibility.dtype} {tuple(visibility.shape)}"
                )

    def key_mask(self, query_mask: Tensor, visibility: Tensor | None = None) -> Tensor:
        """The attention key mask: ``query_mask`` (and ``visibility`` when ``mask_occluded``)."""
        if self.mask_occluded:
            if visibility is None:
                raise ValueError("TATs: mask_occluded=True needs the visibility [B, T, N] argument")
            return query_mask & visibility
        return query_mask

    def embed(self, features: Tensor, tracks: Tensor) -> Tensor:
        """Add ``space_pos`` and ``time_pos`` to the grid, then sample: -> point tokens ``[B, T, N, D]``.

        The embeddings are added *before* sampling, so a point outside the grid gets exactly zero.
        """
        t, g, d = features.shape[1], self.grid_size, self.feat_dim
        pos = self.space_pos.reshape(1, 1, g, g, d) + self.time_pos.reshape(1, t, 1, 1, d)
        return sample_tokens(features + pos, tracks, self.sampling)

    def transform(self, tokens: Tensor, key_mask: Tensor) -> tuple[Tensor, Tensor]:
        """CLS + blocks + final norm on point tokens ``[B, T, N, D]`` -> (cls ``[B, D]``, tokens ``[B, T, N, D]``)."""
        cls = self.cls_token.expand(tokens.shape[0], 1, -1).to(tokens.dtype)
        for block in self.blocks:
            cls, tokens = block(cls, tokens, key_mask)
        return self.norm(cls[:, 0]), self.norm(tokens)

    def classify(self, cls: Tensor) -> Tensor:
        """Base-class logits ``head(tanh(pre_logits(cls)))``."""
        return self.head(torch.tanh(self.pre_logits(cls)))

    def forward(
        self, features: Tensor, tracks: Tensor, query_mask: Tensor, visibility: Tensor | None = None
    ) -> TATsOutput:
        self.check_inputs(features, tracks, query_mask, visibility)
        tokens = self.embed(features, tracks)
        cls, tokens = self.transform(tokens, self.key_mask(query_mask, visibility))
        return TATsOutput(cls_logits=self.classify(cls), tokens=tokens)
