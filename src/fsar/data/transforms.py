"""Clip transforms in plain torch: resize, crop, flip, normalise, with one set of random parameters per clip.

``ClipTransform`` maps uint8 frames ``[T, H, W, 3]`` (numpy or torch) to a float32 tensor ``[T, 3, h, w]``:

1. Resize, bilinear on float tensors (``torch.nn.functional.interpolate``, ``align_corners=False``,
   ``antialias=True`` when downscaling), either
   - ``resize_short=S``: the short side becomes ``S`` and the long side ``int(S * long / short)`` (the TA2N / TRX
     ``Resize(256)``, ta2n.md §6; a frame whose short side is already ``S`` is left as is), or
   - ``resize_to=(H, W)``: a fixed size, aspect ratio not kept (TATs' ``Resize((224, 224))``, tats.md §2).
2. Crop ``crop`` x ``crop``: a random offset at train (uniform over all valid offsets), the centre at test with offset
   ``round((size - crop) / 2)`` (Python rounding, as TA2N's ``CenterCrop``).
3. Horizontal flip with probability 0.5, at train only and only when ``flip=True``. The default is off; benchmarks
   with direction-sensitive labels (SSv2: "pushing left to right") must never flip.
4. ``/255`` then ``(x - mean) / std`` with the preset ``normalization``: ``imagenet``, ``clip`` (TATs) or ``none``
   (TRX / TA2N parity: only ``/255``).

The same crop offset and flip apply to every frame of a clip (trx#1: a per-frame crop costs accuracy).

Random parameters are explicit instead of hidden state: ``sample_params(in_hw, rng)`` draws a ``ClipParams``
(crop offset first, then the flip coin, from the given ``numpy.random.Generator``), ``apply(frames, params)`` uses
it, and ``transform_points(xy, params)`` moves point tracks (pixel (x, y), pixel-centre convention: pixel ``i``
covers ``[i-0.5, i+0.5]``) into the output frame, so pixels and tracks stay aligned.
``__call__(frames, rng)`` is ``apply(frames, sample_params(frames' (H, W), rng))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


@dataclass(frozen=True)
class ClipParams:
    """The geometry applied to one clip: input size, size after resizing, crop box and flip."""

    in_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    crop_top: int
    crop_left: int
    out_hw: tuple[int, int]
    flip: bool


def short_side_size(in_hw: tuple[int, int], size: int) -> tuple[int, int]:
    """(H, W) after resizing the short side to ``size``; long side ``int(size * long / short)`` (TA2N)."""
    h, w = int(in_hw[0]), int(in_hw[1])
    if min(h, w) == size:
        return h, w
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


class ClipTransform:
    """Resize -> crop -> flip -> normalise a clip; see the module docstring for each step."""

    def __init__(
        self,
        resize_short: int | None = 256,
        resize_to: tuple[int, int] | None = None,
        crop: int | tuple[int, int] | None = 224,
        *,
        train: bool,
        flip: bool = False,
        normalization: str = "imagenet",
    ) -> None:
        if resize_short is not None and resize_to is not None:
            raise ValueError(
                f"ClipTransform: give either resize_short ({resize_short}) or resize_to ({resize_to}), not both"
            )
        if resize_short is not None and int(resize_short) < 1:
            raise ValueError(f"ClipTransform: resize_short must be >= 1, got {resize_short}")
        if resize_to is not None:
            resize_to = tuple(int(s) for s in resize_to)  # type: ignore[assignment]
            if len(resize_to) != 2 or min(resize_to) < 1:
                raise ValueError(
                    f"ClipTransform: resize_to must be (H, W) with positive sizes, got {resize_to}"
                )
        if crop is not None:
            crop = (
                (int(crop), int(crop)) if isinstance(crop, (int, np.integer)) else tuple(int(c) for c in crop)
            )
            if len(crop) != 2 or min(crop) < 1:
                raise ValueError(f"ClipTransform: crop must be a positive size or (h, w), got {crop}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"ClipTransform: unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}"
            )
        self.resize_short = None if resize_short is None else int(resize_short)
        self.resize_to = resize_to
        self.crop: tuple[int, int] | None = crop  # type: ignore[assignment]
        self.train = bool(train)
        self.flip = bool(flip)
        self.normalization = normalization

    def __repr__(self) -> str:
        return (
            f"ClipTransform(resize_short={self.resize_short}, resize_to={self.resize_to}, crop={self.crop}, "
            f"train={self.train}, flip={self.flip}, normalization={self.normalization!r})"
        )

    def resized_size(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        if self.resize_to is not None:
            return self.resize_to
        if self.resize_short is not None:
            return short_side_size(in_hw, self.resize_short)
        return int(in_hw[0]), int(in_hw[1])

    def sample_params(self, in_hw: tuple[int, int], rng: np.random.Generator) -> ClipParams:
        """Draw the clip's crop offset (train) and flip (train with ``flip``) from ``rng``."""
        in_hw = (int(in_hw[0]), int(in_hw[1]))
        rh, rw = self.resized_size(in_hw)
        if self.crop is None:
            top = left = 0
            out_hw = (rh, rw)
        else:
            ch, cw = self.crop
            if ch > rh or cw > rw:
                raise ValueError(
                    f"ClipTransform: crop {ch}x{cw} is larger than the frame {rh}x{rw} (input {in_hw[0]}x{in_hw[1]}"
                    f" after resizing); lower `crop` or raise `resize_short`"
                )
            if self.train:
                top = int(rng.integers(0, rh - ch, endpoint=True))
                left = int(rng.integers(0, rw - cw, endpoint=True))
            else:
                top, left = int(round((rh - ch) / 2)), int(round((rw - cw) / 2))
            out_hw = (ch, cw)
        flip = bool(self.train and self.flip and rng.random() < 0.5)
        return ClipParams(in_hw, (rh, rw), top, left, out_hw, flip)

    def apply(self, frames: np.ndarray | torch.Tensor, params: ClipParams) -> torch.Tensor:
        """Transform uint8 ``[T, H, W, 3]`` frames with ``params``; float32 ``[T, 3, h, w]`` on the input's device."""
        x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(
                f"ClipTransform expects uint8 frames [T, H, W, 3], got {x.dtype} {tuple(x.shape)}"
            )
        if tuple(x.shape[1:3]) != params.in_hw:
            raise ValueError(
                f"ClipTransform: frames are {tuple(x.shape[1:3])} but params were drawn for {params.in_hw}"
            )
        return normalize_(geometry([x], [params])[0], self.normalization)

    def __call__(self, frames: np.ndarray | torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        in_hw = (int(frames.shape[1]), int(frames.shape[2]))
        return self.apply(frames, self.sample_params(in_hw, rng))


def geometry(x: torch.Tensor | Sequence[torch.Tensor], params: Sequence[ClipParams]) -> torch.Tensor:
    """Steps 1-3 on a batch of uint8 clips ``[T, H, W, 3]`` (a stacked ``[B, T, H, W, 3]`` tensor or a list) that
    share their input and resized sizes, each clip with its own crop and flip: float32 ``[B, T, 3, h, w]`` (not
    normalised) on the input's device. ``B = 1`` is ``ClipTransform.apply``; the device path
    (``fsar.data.augment``) runs whole groups of an episode at once."""
    if len(params) != len(x) or not len(params):
        raise ValueError(f"geometry: {len(x)} clips but {len(params)} parameter sets")
    in_hw, resized_hw, out_hw = params[0].in_hw, params[0].resized_hw, params[0].out_hw
    if any(p.in_hw != in_hw or p.resized_hw != resized_hw or p.out_hw != out_hw for p in params):
        raise ValueError("geometry: clips of one call must share their input, resized and output sizes")
    (h, w), t = out_hw, int(x[0].shape[0])
    out = torch.empty((len(params), t, 3, h, w), dtype=torch.float32, device=x[0].device)
    if resized_hw == in_hw:
        # no resize (e.g. a clip store's frames): crop and flip the uint8 frames, then convert only the kept
        # pixels to float; the same values as converting first, with a fraction of the memory traffic
        for k, (clip, p) in enumerate(zip(x, params)):
            c = clip[:, p.crop_top : p.crop_top + h, p.crop_left : p.crop_left + w]
            out[k].copy_((c.flip(2) if p.flip else c).permute(0, 3, 1, 2))
        return out
    stacked = x if isinstance(x, torch.Tensor) else torch.stack(list(x))
    y = _resize(stacked.reshape(-1, *stacked.shape[2:]).permute(0, 3, 1, 2).to(torch.float32), resized_hw)
    y = y.reshape(len(params), t, *y.shape[1:])
    for k, p in enumerate(params):
        c = y[k, :, :, p.crop_top : p.crop_top + h, p.crop_left : p.crop_left + w]
        out[k].copy_(c.flip(-1) if p.flip else c)
    return out


def normalize_(x: torch.Tensor, normalization: str) -> torch.Tensor:
    """Step 4 in place on float ``[..., 3, h, w]`` pixels in ``[0, 255]``: ``(x - 255 mean) / (255 std)``."""
    mean, std = NORMALIZATIONS[normalization]
    # made on the host and copied without waiting (no stream sync on an accelerator); the same float32 values
    mean_t = (torch.tensor(mean, dtype=x.dtype).view(3, 1, 1) * 255.0).to(x.device, non_blocking=True)
    std_t = (torch.tensor(std, dtype=x.dtype).view(3, 1, 1) * 255.0).to(x.device, non_blocking=True)
    return x.sub_(mean_t).div_(std_t)


def _resize(x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Step 1 on float ``[T, 3, H, W]``: bilinear, antialiased when downscaling; unchanged at the same size."""
    in_hw = (int(x.shape[-2]), int(x.shape[-1]))
    if tuple(out_hw) == in_hw:
        return x
    down = out_hw[0] < in_hw[0] or out_hw[1] < in_hw[1]
    return F.interpolate(x, size=tuple(out_hw), mode="bilinear", align_corners=False, antialias=down)


def resize_frames(frames: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """uint8 frames ``[T, H, W, 3]`` resized to ``out_hw`` with step 1's filter, rounded back to uint8.

    The clip store keeps frames resized this way, so a stored clip differs from the clip transformed from the
    decoded video by the rounding only: at most 0.5 grey levels before normalisation."""
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"resize_frames expects uint8 frames [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    if tuple(x.shape[1:3]) == tuple(out_hw):
        return np.ascontiguousarray(frames)
    y = _resize(x.permute(0, 3, 1, 2).to(torch.float32), (int(out_hw[0]), int(out_hw[1])))
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def transform_points(xy: np.ndarray | torch.Tensor, params: ClipParams) -> np.ndarray | torch.Tensor:
    """Map pixel (x, y) points ``[..., 2]`` of the input frames into the transformed frames (same geometry as
    ``ClipTransform.apply``; pixel-centre convention). Returns the same array type, as floating point. Points may
    fall outside ``[0, w-1] x [0, h-1]`` when the crop cuts them off."""
    is_np = isinstance(xy, np.ndarray)
    pts = torch.from_numpy(np.asarray(xy, dtype=np.float64)) if is_np else xy.to(torch.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"transform_points expects (x, y) in the last axis, got shape {tuple(pts.shape)}")
    sy = params.resized_hw[0] / params.in_hw[0]
    sx = params.resized_hw[1] / params.in_hw[1]
    x = (pts[..., 0] + 0.5) * sx - 0.5 - params.crop_left
    y = (pts[..., 1] + 0.5) * sy - 0.5 - params.crop_top
    if params.flip:
        x = (params.out_hw[1] - 1) - x
    out = torch.stack([x, y], dim=-1)
    if is_np:
        return out.numpy().astype(np.result_type(np.asarray(xy).dtype, np.float32))
    return out.to(xy.dtype if xy.is_floating_point() else torch.float32)
