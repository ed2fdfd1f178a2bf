"""The Trokens network: TATs' trajectory-aligned tokens plus HoD and relative-motion embeddings.

Kumar et al., "Trokens: Semantic-Aware Relational Trajectory Tokens for Few-Shot Action Recognition", ICCV 2025
(reference code ``pulkitkumar95/trokens``, class ``Pointformer``; our spec: trokens.md section 3).

:class:`Trokens` *is* a :class:`fsar.models.tats.TATs` (same positional embeddings, token sampler, masked divided
space-time block, CLS head, parameter names and initialisation); after the tokens are sampled it adds

    X += HoDEmbed(hod if given else hod_features(tracks)) + RelEmbed(relative_motion_features(tracks, visibility))

(:mod:`fsar.models.trokens.motion`), then runs TATs' transformer unchanged. Motion tokens are added at every
position, masked (pre-query) ones and points outside the frame included, as in the original.

Differences from :class:`TATs` on inputs: NaN coordinates are accepted (TATs refuses them): such a point samples
the zero appearance vector, its coordinates count as 0 in the motion features and, for relative motion, as not
visible. ``num_points`` must be fixed (the relative-motion width is 2N).

**Not in the original** (off by default): ``motion_gate=g0`` multiplies each motion embedding by its own learnable
scalar (``hod_gate``, ``rel_gate``), initialised to ``g0``: ``X += hod_gate * HoDEmbed(..) + rel_gate *
RelEmbed(..)``. With ``g0 = 0`` the untrained network equals TATs exactly and the motion is let in only as far
as training opens the gates. Why: each embedding ends in a LayerNorm, so it adds a vector of RMS 1 to every
token, as large as the appearance tokens of fsar's synthetic benchmark (RMS 1.09) and 16x the time embedding that
carries TATs' order; on its LK grid tracks most points are static, so that vector is nearly the same for every
token (99.8 % of the HoD embedding's energy untrained, 99.9 % trained). Untrained, it halves the gap between
other-class and same-class Bi-MHM distances, and at the demo's budget it costs TATs' twin-query accuracy; the gate
removes that loss (BENCHMARKS.md, "Trokens ablation").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fsar.models.tats.model import TATs, TATsOutput
from fsar.models.trokens.motion import MotionEmbedding, hod_features, relative_motion_features

# Seed offset of the motion modules' generator: independent of the stream that initialises the TATs part.
_MOTION_SEED_OFFSET = 0x7A0C


class Trokens(TATs):
    """TATs + motion embeddings. ``forward(features, tracks, query_mask, visibility=None, hod=None)``.

    - ``features [B, T, G, G, D]``, ``tracks [B, T, N, 2]`` (u, v), ``query_mask [B, T, N]`` bool: as TATs.
    - ``visibility [B, T, N]`` bool or None (every point visible) for relative motion (and the key mask when
      ``mask_occluded``).
    - ``hod [B, T, N, num_bins]``: precomputed HoD, or None to compute :func:`hod_features` from ``tracks``.

    Args beyond TATs': ``num_bins`` (32), ``use_hod`` / ``use_relative_motion`` (both True in every Trokens run),
    ``motion_gate`` (None: the original; a float ``g0``: learnable scalar gates initialised to ``g0``, a
    deviation described in the module docstring; a gated model has the extra parameters ``hod_gate`` /
    ``rel_gate``, so reference checkpoints do not load into it strictly).
    With both off, the model equals ``TATs`` with the same arguments and seed exactly.
    Initialisation: the TATs part as :class:`TATs` (``init_seed``); the motion modules PyTorch's defaults drawn
    from a generator seeded with ``init_seed + 0x7A0C`` (the global RNG is untouched).
    """

    def __init__(
        self,
        feat_dim: int = 768,
        num_frames: int = 8,
        num_points: int = 256,
        num_classes: int = 64,
        depth: int = 1,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        grid_size: int = 16,
        num_bins: int = 32,
        use_hod: bool = True,
        use_relative_motion: bool = True,
        sampling: str = "nearest_reference",
        mask_occluded: bool = False,
        norm_eps: float = 1e-6,
        init_seed: int = 0,
        device: torch.device | str | None = None,
        motion_gate: float | None = None,
    ) -> None:
        if num_points is None or int(num_points) < 1:
            raise ValueError(
                f"Trokens: num_points must be a fixed positive number (the relative-motion width is 2N); got "
                f"{num_points}"
            )
        if int(num_bins) < 2:
            raise ValueError(f"Trokens: num_bins must be >= 2; got {num_bins}")
        if motion_gate is not None and not torch.isfinite(torch.tensor(float(motion_gate))):
            raise ValueError(f"Trokens: motion_gate must be a finite number or None; got {motion_gate}")
        super().__init__(
            feat_dim=feat_dim,
            num_frames=num_frames,
            num_points=int(num_points),
            num_classes=num_classes,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            grid_size=grid_size,
            sampling=sampling,
            mask_occluded=mask_occluded,
            norm_eps=norm_eps,
            init_seed=init_seed,
            device="meta",
        )
        self.num_bins = int(num_bins)
        self.use_hod = bool(use_hod)
        self.use_relative_motion = bool(use_relative_motion)
        meta = torch.device("meta")
        self.hod_embed = MotionEmbedding(self.num_bins, feat_dim, device=meta) if self.use_hod else None
        self.rel_embed = (
            MotionEmbedding(2 * int(num_points), feat_dim, device=meta) if self.use_relative_motion else None
        )
        self.motion_gate = None if motion_gate is None else float(motion_gate)
        gated = self.motion_gate is not None
        self.hod_gate = nn.Parameter(torch.empty((), device=meta)) if gated and self.use_hod else None
        self.rel_gate = (
            nn.Parameter(torch.empty((), device=meta)) if gated and self.use_relative_motion else None
        )
        target = torch.device(device) if device is not None else torch.device("cpu")
        if target.type != "meta":
            self.to_empty(device=target)
            self.reset_parameters(init_seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """The TATs part as :meth:`TATs.reset_parameters`; the motion modules with PyTorch's defaults; the
        gates (``motion_gate`` set) to ``motion_gate``."""
        super().reset_parameters(seed)
        gen = torch.Generator(device=self.cls_token.device).manual_seed(seed + _MOTION_SEED_OFFSET)
        for module in (self.hod_embed, self.rel_embed):
            if module is not None:
                module.reset_parameters(gen)
        for gate in (self.hod_gate, self.rel_gate):
            if gate is not None:
                gate.fill_(self.motion_gate)

    # ------------------------------------------------------------------------------------------------
    def _visibility(self, tracks: Tensor, visibility: Tensor | None) -> Tensor:
        if visibility is None:
            return torch.ones(tracks.shape[:3], dtype=torch.bool, device=tracks.device)
        if visibility.shape != tracks.shape[:3] or visibility.dtype != torch.bool:
            raise ValueError(
                f"Trokens: visibility must be a bool tensor {tuple(tracks.shape[:3])} [B, T, N]; got "
                f"{visibility.dtype} {tuple(visibility.shape)}"
            )
        return visibility

    def motion_embeddings(
        self, tracks: Tensor, visibility: Tensor | None, hod: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(HoDEmbed(hod), RelEmbed(relative motion))``, each ``[B, T, N, D]`` or None when switched off
        (before the gates of ``motion_gate``, which ``forward`` applies)."""
        hod_emb = rel_emb = None
        if self.hod_embed is not None:
            if hod is None:
                hod = hod_features(tracks, self.num_bins)
            expected = (*tracks.shape[:3], self.num_bins)
            if tuple(hod.shape) != expected:
                raise ValueError(
                    f"Trokens: hod must be [B, T, N, num_bins] = {expected}; got {tuple(hod.shape)}"
                )
            hod_emb = self.hod_embed(hod.to(device=tracks.device, dtype=torch.float32))
        if self.rel_embed is not None:
            rel = relative_motion_features(tracks, self._visibility(tracks, visibility))
            rel_emb = self.rel_embed(rel.float())
        return hod_emb, rel_emb

    @staticmethod
    def _gated(embedding: Tensor, gate: Tensor | None) -> Tensor:
        return embedding if gate is None else gate.to(embedding.dtype) * embedding

    def forward(  # type: ignore[override]
        self,
        features: Tensor,
        tracks: Tensor,
        query_mask: Tensor,
        visibility: Tensor | None = None,
        hod: Tensor | None = None,
    ) -> TATsOutput:
        lost = torch.isnan(tracks)
        clean = torch.where(lost, torch.zeros_like(tracks), tracks)
        self.check_inputs(features, clean, query_mask, visibility)
        self._visibility(tracks, visibility)
        tokens = self.embed(features, clean)
        lost_point = lost.any(dim=-1)
        if bool(lost_point.any()):  # a NaN coordinate samples the zero appearance vector
            tokens = tokens * (~lost_point).unsqueeze(-1).to(tokens.dtype)
        hod_emb, rel_emb = self.motion_embeddings(tracks, visibility, hod)
        if hod_emb is not None:
            tokens = tokens + self._gated(hod_emb, self.hod_gate).to(tokens.dtype)
        if rel_emb is not None:
            tokens = tokens + self._gated(rel_emb, self.rel_gate).to(tokens.dtype)
        cls, tokens = self.transform(tokens, self.key_mask(query_mask, visibility))
        return TATsOutput(cls_logits=self.classify(cls), tokens=tokens)
