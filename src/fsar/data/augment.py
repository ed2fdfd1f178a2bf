"""Augmentation as a plan drawn in the loader and carried out where the caller chooses (``data.augment_on``).

A clip's random choices (RandAugment draw, crop offset, flip) are drawn by the loader from the clip's own generator,
in the same order whatever happens next, into a :class:`ClipPlan`. :func:`realize_clips` carries plans out on a
batch of uint8 clips with batched tensor ops, on whatever device the clips are on:

1. RandAugment (``fsar.data.randaugment``), clips that apply the same op at the same step together;
2. resize, crop and flip (``fsar.data.transforms.geometry``), clips of the same size together;
3. normalisation (``fsar.data.transforms.normalize_``) and the input modality (``fsar.data.modality``) over the
   whole batch.

The loader path (``augment_on: loader``) calls it on one clip in the worker; the device path
(``augment_on: device``) ships uint8 clips and their plans as a :class:`RawClipBatch` (pinned by the DataLoader for a
CUDA device), and the engine calls :meth:`RawClipBatch.augment` after the non-blocking copy. One implementation, two
placements: on the CPU both give the same numbers (``tests/data/test_augment.py``); on an accelerator only the
floating-point rounding of its kernels differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from fsar.data.batch import ClipBatch
from fsar.data.modality import apply_modality
from fsar.data.randaugment import AugmentDraw, apply_draws
from fsar.data.transforms import NORMALIZATIONS, ClipParams, geometry, normalize_

AUGMENT_PLACES = ("loader", "device")


@dataclass(frozen=True)
class ClipPlan:
    """What remains to be done to one clip's uint8 frames: ``params.in_hw`` is the size of the frames as shipped
    (a clip store's frames are already resized: then ``in_hw == resized_hw`` and only crop and flip remain)."""

    params: ClipParams
    normalization: str
    augment: AugmentDraw | None = None
    modality: str = "rgb"


def fit_params(params: ClipParams, hw: tuple[int, int]) -> ClipParams:
    """``params`` for frames of size ``hw``: the original size ``params.in_hw``, or already resized to
    ``params.resized_hw`` (a clip store's frames; then only crop, flip and normalisation remain)."""
    hw = (int(hw[0]), int(hw[1]))
    if hw == params.in_hw:
        return params
    if hw != params.resized_hw:
        raise ValueError(
            f"frames of size {hw} are neither the original size {params.in_hw} nor the resized size "
            f"{params.resized_hw} of this transform; was the clip store prepared with another resolution?"
        )
    return replace(params, in_hw=hw)


def realize_clips(frames: Sequence[Tensor] | Tensor, plans: Sequence[ClipPlan]) -> Tensor:
    """Carry out ``plans`` on uint8 clips ``[T, H, W, 3]`` (a list, sizes may differ, or a stacked tensor), all on
    one device: float32 ``[B, T, C, h, w]`` there (``C`` = 3, or 6 for ``rgb_diff``)."""
    clips = list(frames)
    if len(clips) != len(plans) or not clips:
        raise ValueError(f"realize_clips: {len(clips)} clips but {len(plans)} plans (need at least one)")
    norms, modalities = {p.normalization for p in plans}, {p.modality for p in plans}
    if len(norms) != 1 or not norms <= set(NORMALIZATIONS) or len(modalities) != 1:
        raise ValueError(
            "realize_clips: the clips of one batch need one known normalization and one modality, got "
            f"{sorted(norms)} and {sorted(modalities)}"
        )
    for clip, plan in zip(clips, plans):
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(
                f"realize_clips expects uint8 clips [T, H, W, 3], got {clip.dtype} {tuple(clip.shape)}"
            )
        if tuple(clip.shape[1:3]) != plan.params.in_hw:
            raise ValueError(
                f"realize_clips: a clip is {tuple(clip.shape[1:3])} but its plan was made for {plan.params.in_hw}"
            )
    out: list[Tensor | None] = [None] * len(clips)
    groups: dict[tuple, list[int]] = {}
    for i, (clip, plan) in enumerate(zip(clips, plans)):
        groups.setdefault((tuple(clip.shape), plan.params.resized_hw, plan.params.out_hw), []).append(i)
    outs = set()
    for members in groups.values():
        group = [clips[i] for i in members]
        drawn = [
            k for k, i in enumerate(members) if plans[i].augment is not None and plans[i].augment.steps()
        ]
        if drawn:  # only the clips that RandAugment changes are stacked and augmented (together)
            x = apply_draws(
                torch.stack([group[k] for k in drawn]), [plans[members[k]].augment for k in drawn]
            )
            for j, k in enumerate(drawn):
                group[k] = x[j]
        y = geometry(group, [plans[i].params for i in members])
        if len(members) == len(clips):  # one group (clips of one size): already the batch, in order
            return apply_modality(normalize_(y, plans[0].normalization), plans[0].modality)
        outs.add(tuple(y.shape[1:]))
        for k, i in enumerate(members):
            out[i] = y[k]
    if len(outs) != 1:
        raise ValueError(
            f"realize_clips: clips come out with different shapes {sorted(outs)}; use a crop or resize_to"
        )
    y = torch.stack(out)
    return apply_modality(normalize_(y, plans[0].normalization), plans[0].modality)


@dataclass
class RawClipBatch:
    """A :class:`ClipBatch` before augmentation: uint8 clips ``[T, H, W, 3]`` and their plans. ``to`` and
    ``pin_memory`` move every tensor (``DataLoader(pin_memory=True)`` calls the latter); :meth:`augment` gives the
    ``ClipBatch`` on the clips' device."""

    frames: list[Tensor]
    plans: list[ClipPlan]
    labels: Tensor
    global_labels: Tensor
    video_ids: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    tracks: Tensor | None = None
    query_mask: Tensor | None = None
    visibility: Tensor | None = None
    short: Tensor | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def _map(self, fn) -> RawClipBatch:
        changes = {
            f.name: fn(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, frames=[fn(x) for x in self.frames], **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RawClipBatch:
        return self._map(lambda x: x.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> RawClipBatch:
        return self._map(lambda x: x.pin_memory())

    def augment(self) -> ClipBatch:
        """The augmented ``ClipBatch``, computed on the device the clips are on."""
        rest = {f.name: getattr(self, f.name) for f in fields(ClipBatch) if f.name != "frames"}
        return ClipBatch(frames=realize_clips(self.frames, self.plans), **rest)


def augmented(batch: ClipBatch | RawClipBatch) -> ClipBatch:
    """``batch`` itself, or a raw batch augmented where its clips are (call after moving it to the device)."""
    return batch.augment() if isinstance(batch, RawClipBatch) else batch
