import numpy as np
import pytest

from fsar.data.randaugment import OPS, _apply_op, draw, rand_augment_video


def clip(seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(4, 12, 12, 3), dtype=np.uint8)


def test_one_draw_per_video_is_applied_to_every_frame_identically():
    frames = np.repeat(clip()[:1], 4, axis=0)  # four identical frames
    for seed in range(20):
        out = rand_augment_video(frames, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out.shape == frames.shape
        assert all(np.array_equal(out[0], out[t]) for t in range(4))


def test_seeded_and_photometric_only():
    a = rand_augment_video(clip(), np.random.default_rng(3))
    b = rand_augment_video(clip(), np.random.default_rng(3))
    assert np.array_equal(a, b)
    d = draw(np.random.default_rng(0))
    assert len(d.ops) == 2 and all(op in OPS for op in d.ops) and all(lv == 1.0 for lv in d.levels)
    changed = [
        seed
        for seed in range(40)
        if not np.array_equal(rand_augment_video(clip(), np.random.default_rng(seed)), clip())
    ]
    assert 10 < len(changed) < 40  # each op applies with p = 0.5: some videos stay untouched


@pytest.mark.parametrize("op", OPS)
def test_each_op_keeps_geometry(op):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[:, 2:4, 5:7] = 200  # a bright patch: photometric ops must not move it
    out = _apply_op(frames, op, 1.0, 1)
    assert out.shape == frames.shape and out.dtype == np.uint8
    inside, outside = (
        out[:, 2:4, 5:7].astype(int),
        np.delete(out.reshape(2, 64, 3), [21, 22, 29, 30], axis=1).astype(int),
    )
    assert np.all(inside == inside[0, 0, 0]) and np.all(outside == outside[0, 0, 0])


def test_invert_and_solarize_values():
    x = np.array([[[[0, 100, 255]]]], np.uint8)
    assert _apply_op(x, "invert", 1.0, 1).tolist() == [[[[255, 155, 0]]]]
    assert _apply_op(x, "solarize", 0.5, 1).tolist() == [[[[0, 100, 0]]]]  # threshold 128


def test_equalize_and_sharpness_blur_are_opencvs_exactly():
    """The torch ops (run batched on any device) keep the OpenCV semantics the policy was written with:
    ``equalizeHist`` per frame and channel (one-value planes included) and the 3x3 ``blur`` (reflect-101 border)."""
    import cv2
    import torch

    from fsar.data.randaugment import _box_blur, apply_op

    rng = np.random.default_rng(0)
    for trial in range(12):
        h, w = (int(v) for v in rng.integers(3, 30, 2))
        x = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        if trial % 4 == 0:
            x[..., 0] = 17  # a one-value plane stays as it is
        if trial % 3 == 0:
            x = (x // 64 * 64).astype(np.uint8)  # few grey levels
        planes = [[np.ascontiguousarray(x[t, :, :, c]) for c in range(3)] for t in range(2)]
        eq = np.stack([np.stack([cv2.equalizeHist(p) for p in ps], axis=-1) for ps in planes])
        assert np.array_equal(apply_op(torch.from_numpy(x), "equalize", 1.0, 1).numpy(), eq), trial
        blur = np.stack([cv2.blur(f, (3, 3)) for f in x])
        assert np.array_equal(_box_blur(torch.from_numpy(x)).numpy(), blur), trial
