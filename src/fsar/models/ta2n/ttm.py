"""TTM, the temporal transform module of TA2N (stage 1: per-video temporal warping).

Liu et al., "TA2N: Two-Stage Action Alignment Network for Few-shot Action Recognition", AAAI 2022, §3.2.
See ``/work/shared/specs/ta2n.md`` §3.3 for the exact behaviour reproduced here.

A small localisation net predicts, per video, an affine time warp ``theta = (a, b)`` (tanh-bounded). Target
frame ``i`` (grid ``t_i = -1 + 2 i / (T - 1)``) reads source coordinate ``s_i = a t_i + b``, i.e. continuous
source frame ``u_i = (s_i + 1)(T - 1) / 2``, by linear interpolation between neighbouring frames with zero
padding outside the clip (faithful default) or border clamping.

The original resamples with ``grid_sample`` on the video viewed as a (C·H·W)-channel 1×T image. The default
here (``warp="matrix"``) builds the equivalent T×T interpolation matrix per video and applies it with one
batched matrix product; ``warp="grid_sample"`` keeps the original formulation (they agree to round-off).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PADDINGS = ("zeros", "border")
WARPS = ("matrix", "grid_sample")


def source_coordinates(theta: Tensor, num_frames: int, padding: str = "zeros") -> Tensor:
    """Continuous source frame index ``u_i`` of every target frame: theta (B, 2) -> (B, T).

    With ``padding="border"`` the coordinate is clamped to [0, T - 1] (as grid_sample's border mode does).
    """
    if padding not in PADDINGS:
        raise ValueError(f"TTM padding must be one of {PADDINGS}; got {padding!r}")
    target = torch.linspace(-1.0, 1.0, num_frames, device=theta.device, dtype=theta.dtype)
    source = theta[:, :1] * target + theta[:, 1:]  # B, T
    u = (source + 1) / 2 * (num_frames - 1)
    if padding == "border":
        u = u.clamp(0, num_frames - 1)
    return u


def interpolation_matrix(u: Tensor, num_frames: int) -> Tensor:
    """Linear-interpolation matrix K (B, T_out, T_in) with ``out_i = sum_j K[i, j] x_j``; zero outside the clip.

    Built like bilinear grid_sample: ``x0 = floor(u)``, weights ``1 - (u - x0)`` on x0 and ``u - x0`` on x0 + 1,
    a neighbour outside [0, T - 1] contributes nothing (its weight is dropped, not renormalised).
    """
    x0 = torch.floor(u)
    w1 = u - x0
    w0 = 1 - w1
    frames = torch.arange(num_frames, device=u.device, dtype=u.dtype)
    hit0 = (frames == x0.unsqueeze(-1)).to(u.dtype)  # B, T_out, T_in
    hit1 = (frames == (x0 + 1).unsqueeze(-1)).to(u.dtype)
    return w0.unsqueeze(-1) * hit0 + w1.unsqueeze(-1) * hit1


def warp_with_matrix(x: Tensor, theta: Tensor, padding: str = "zeros") -> Tensor:
    """Warp videos x (B, C, T, H, W) in time with theta (B, 2) through a T×T interpolation matrix."""
    b, c, t, h, w = x.shape
    k = interpolation_matrix(source_coordinates(theta, t, padding), t)  # B, T, T
    out = torch.bmm(k, x.transpose(1, 2).reshape(b, t, c * h * w))  # B, T, C*H*W
    return out.reshape(b, t, c, h, w).transpose(1, 2)


def warp_with_grid_sample(x: Tensor, theta: Tensor, padding: str = "zeros") -> Tensor:
    """The original formulation: grid_sample on the video viewed as a (C·H·W)-channel image of size 1×T."""
    if padding not in PADDINGS:
        raise ValueError(f"TTM padding must be one of {PADDINGS}; got {padding!r}")
    b, c, t, h, w = x.shape
    target = torch.linspace(-1.0, 1.0, t, device=theta.device, dtype=theta.dtype)
    source = theta[:, :1] * target + theta[:, 1:]  # B, T
    grid = torch.stack([source, torch.full_like(source, -1.0)], -1).unsqueeze(1)  # B, 1, T, 2
    image = x.transpose(1, 2).reshape(b, t, c * h * w).transpose(1, 2).unsqueeze(2)  # B, CHW, 1, T
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return out.squeeze(2).transpose(1, 2).reshape(b, t, c, h, w).transpose(1, 2)


class TTM(nn.Module):
    """Temporal transform module.

    Args:
        T: number of frames per clip (inputs must have exactly T frames).
        shot: kept for signature parity with the original (unused by TTM).
        dim: (C, C'); C is the input channel count.
        theta_init: initial warp: the final Linear gets weight 0 and bias ``theta_init``, so theta starts at
            ``tanh(theta_init)``. Faithful default (2.0, 0.0) gives (0.964, 0), *not* the identity warp.
            ``None`` keeps PyTorch's default Linear init.
        padding: ``"zeros"`` (faithful: frames sampled outside the clip are attenuated / zero) or ``"border"``.
        warp: ``"matrix"`` (default, T×T interpolation matrix) or ``"grid_sample"`` (the original's operator).

    Parameters are named ``conv1, bn1, conv2, bn2, fc1, fc2`` (the original's ``locnet.{0,1,4,5,10,12}``).
    """

    def __init__(
        self,
        T: int = 8,
        shot: int = 1,
        dim: Sequence[int] = (2048, 2048),
        *,
        theta_init: Sequence[float] | None = (2.0, 0.0),
        padding: str = "zeros",
        warp: str = "matrix",
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"TTM padding must be one of {PADDINGS}; got {padding!r}")
        if warp not in WARPS:
            raise ValueError(f"TTM warp must be one of {WARPS}; got {warp!r}")
        self.T = int(T)
        self.shot = int(shot)
        self.dim = tuple(int(d) for d in dim)
        self.padding = padding
        self.warp = warp
        channels = self.dim[0]
        self.conv1 = nn.Conv3d(channels, 64, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(64)
        self.conv2 = nn.Conv3d(64, 128, 3, padding=1)
        self.bn2 = nn.BatchNorm3d(128)
        self.fc1 = nn.Linear(128, 32)
        self.fc2 = nn.Linear(32, 2)
        if theta_init is not None:
            if len(theta_init) != 2:
                raise ValueError(f"ttm theta_init must be a pair (a, b); got {theta_init!r}")
            with torch.no_grad():
                self.fc2.weight.zero_()
                self.fc2.bias.copy_(torch.as_tensor(tuple(theta_init), dtype=self.fc2.bias.dtype))

    def _check(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"TTM expects videos (B, C, T, H, W); got shape {tuple(x.shape)}")
        _, c, t, h, w = x.shape
        if c != self.dim[0]:
            raise ValueError(f"TTM was built for C={self.dim[0]} channels; got input with C={c}")
        if t != self.T:
            raise ValueError(f"TTM was built for T={self.T} frames; got input with T={t}")
        if min(t, h, w) < 4:
            raise ValueError(
                f"TTM's localisation net pools twice by 2, so T, H and W must all be >= 4; got T={t}, H={h}, W={w}"
            )

    def theta(self, x: Tensor) -> Tensor:
        """Warp parameters (a, b) in (-1, 1)^2 per video: (B, C, T, H, W) -> (B, 2)."""
        self._check(x)
        y = F.relu(F.max_pool3d(self.bn1(self.conv1(x)), 2))
        y = F.relu(F.max_pool3d(self.bn2(self.conv2(y)), 2))
        y = F.adaptive_max_pool3d(y, 1).flatten(1)  # global max pool -> (B, 128)
        return torch.tanh(self.fc2(F.relu(self.fc1(y))))

    def warp_videos(self, x: Tensor, theta: Tensor) -> Tensor:
        """Apply the warp theta (B, 2) to videos x (B, C, T, H, W)."""
        if self.warp == "matrix":
            return warp_with_matrix(x, theta, self.padding)
        return warp_with_grid_sample(x, theta, self.padding)

    def align(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Temporally align each video on its own: returns (aligned (B, C, T, H, W), theta (B, 2)).

        In train mode each call is one BatchNorm batch (TA2N calls it for support, then for query).
        """
        theta = self.theta(x)
        return self.warp_videos(x, theta), theta

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.align(x)
