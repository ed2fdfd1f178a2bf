from dataclasses import replace

import numpy as np
import pytest
import torch

from fsar.data.transforms import NORMALIZATIONS, ClipTransform, short_side_size, transform_points


def rng(seed=0):
    return np.random.default_rng(seed)


def coord_frames(T=3, H=40, W=57):
    """R = x, G = y, B = frame index: any crop offset can be read back from the output."""
    yy, xx = np.mgrid[0:H, 0:W]
    f = np.stack([xx, yy, np.zeros_like(xx)], axis=-1).astype(np.uint8)
    out = np.repeat(f[None], T, axis=0)
    out[..., 2] = np.arange(T).reshape(T, 1, 1)
    return out


def to_pixels(x):
    return (x * 255.0).round().to(torch.int64)  # normalization "none": x = pixel / 255


def test_short_side_size_matches_ta2n():
    assert short_side_size((240, 320), 256) == (256, 341)
    assert short_side_size((320, 240), 256) == (341, 256)
    assert short_side_size((256, 400), 256) == (256, 400)  # already there: untouched
    assert short_side_size((100, 100), 50) == (50, 50)


def test_shapes_and_dtype():
    frames = coord_frames(4, 48, 64)
    t = ClipTransform(resize_short=32, crop=24, train=True)
    out = t(frames, rng())
    assert out.shape == (4, 3, 24, 24) and out.dtype == torch.float32
    assert ClipTransform(resize_short=32, crop=None, train=False)(frames, rng()).shape == (4, 3, 32, 42)
    assert ClipTransform(None, resize_to=(20, 30), crop=None, train=False)(frames, rng()).shape == (
        4,
        3,
        20,
        30,
    )
    assert ClipTransform(None, crop=None, train=False)(torch.from_numpy(frames), rng()).shape == (
        4,
        3,
        48,
        64,
    )


def test_centre_crop_offset_uses_round():
    t = ClipTransform(None, crop=24, train=False, normalization="none")
    out = to_pixels(t(coord_frames(), rng()))
    # (40-24)/2 = 8 and (57-24)/2 = 16.5 -> round() = 16 (Python rounds half to even, as TA2N)
    assert out[0, 1, 0, 0] == 8 and out[0, 0, 0, 0] == 16
    p = t.sample_params((40, 57), rng())
    assert (p.crop_top, p.crop_left, p.out_hw, p.flip) == (8, 16, (24, 24), False)


def test_train_crop_is_random_seeded_and_shared_by_all_frames():
    t = ClipTransform(None, crop=24, train=True, normalization="none")
    frames = coord_frames(T=5)
    offsets = set()
    for seed in range(40):
        out = to_pixels(t(frames, rng(seed)))
        top, left = int(out[0, 1, 0, 0]), int(out[0, 0, 0, 0])
        assert 0 <= top <= 16 and 0 <= left <= 33
        # every frame has the same crop: R and G planes identical across frames, B is the frame index
        assert torch.equal(out[:, :2], out[:1, :2].expand(5, -1, -1, -1))
        assert out[:, 2, 0, 0].tolist() == [0, 1, 2, 3, 4]
        p = t.sample_params((40, 57), rng(seed))
        assert (p.crop_top, p.crop_left) == (top, left)
        offsets.add((top, left))
    assert len(offsets) > 10
    assert torch.equal(t(frames, rng(7)), t(frames, rng(7)))


def test_flip_flips_and_is_off_by_default_and_at_test():
    frames = coord_frames()
    t = ClipTransform(None, crop=24, train=True, flip=True, normalization="none")
    flips = [t.sample_params((40, 57), rng(s)).flip for s in range(40)]
    assert 5 < sum(flips) < 35
    seed = flips.index(True)
    p = t.sample_params((40, 57), rng(seed))
    flipped = t.apply(frames, p)
    plain = t.apply(frames, replace(p, flip=False))
    assert torch.equal(flipped, plain.flip(-1))
    assert to_pixels(flipped)[0, 0, 0, -1] == p.crop_left  # left edge is now on the right
    no_flip = ClipTransform(None, crop=24, train=True, normalization="none")
    assert not any(no_flip.sample_params((40, 57), rng(s)).flip for s in range(40))
    test_t = ClipTransform(None, crop=24, train=False, flip=True)
    assert not any(test_t.sample_params((40, 57), rng(s)).flip for s in range(40))


@pytest.mark.parametrize("name", ["imagenet", "clip", "none"])
def test_normalisation_values(name):
    frames = np.full((2, 8, 8, 3), 128, dtype=np.uint8)
    frames[..., 1] = 0
    frames[..., 2] = 255
    out = ClipTransform(None, crop=None, train=False, normalization=name)(frames, rng())
    mean, std = NORMALIZATIONS[name]
    for c, v in enumerate([128, 0, 255]):
        expected = (v / 255 - mean[c]) / std[c]
        assert torch.allclose(out[:, c], torch.full_like(out[:, c], expected), atol=1e-5)
    if name == "imagenet":
        assert out[0, 0, 0, 0].item() == pytest.approx((128 / 255 - 0.485) / 0.229, abs=1e-5)
        assert out[0, 1, 0, 0].item() == pytest.approx(-0.456 / 0.224, abs=1e-5)


def test_resize_is_bilinear_and_antialiased_when_downscaling():
    const = np.full((1, 30, 40, 3), 77, dtype=np.uint8)
    out = ClipTransform(resize_short=13, crop=None, train=False, normalization="none")(const, rng())
    assert torch.allclose(out * 255, torch.full_like(out, 77.0), atol=1e-3)
    noise = rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    small = ClipTransform(resize_short=16, crop=None, train=False, normalization="none")(noise, rng())
    # a 4x bilinear-without-antialias sample averages 2 pixels (std / sqrt 2); the antialiasing filter many more
    assert (small * 255).std() < 0.3 * noise.astype(np.float64).std()


def centroid(img):
    ys, xs = torch.meshgrid(torch.arange(img.shape[0]), torch.arange(img.shape[1]), indexing="ij")
    w = img.double()
    return ((xs * w).sum() / w.sum()).item(), ((ys * w).sum() / w.sum()).item()


@pytest.mark.parametrize("resize_short, crop", [(96, 64), (24, None), (None, 40)])
def test_transform_points_follows_the_pixels(resize_short, crop):
    """A bright pixel's intensity centroid after the transform sits where transform_points puts it."""
    H, W = 48, 64
    pts = np.array([[20.0, 17.0], [41.0, 30.0]])
    frames = np.zeros((len(pts), H, W, 3), dtype=np.uint8)
    for t, (x, y) in enumerate(pts):
        frames[t, int(y), int(x)] = 255
    tf = ClipTransform(resize_short, crop=crop, train=True, flip=True, normalization="none")
    checked = 0
    for seed in range(12):
        params = tf.sample_params((H, W), rng(seed))
        out = tf.apply(frames, params)
        xy = transform_points(pts[:, None, :], params)  # [T, N=1, 2]
        assert xy.shape == (2, 1, 2) and xy.dtype == np.float64
        h, w = params.out_hw
        for t in range(len(pts)):
            x, y = xy[t, 0]
            if x < -3 or y < -3 or x > w + 2 or y > h + 2:
                assert out[t, 0].abs().sum() < 1e-6  # predicted outside the crop: nothing left
                continue
            if not (4 <= x <= w - 5 and 4 <= y <= h - 5):
                continue  # too close to the border for an uncut centroid
            cx, cy = centroid(out[t, 0])
            assert cx == pytest.approx(x, abs=1e-3)
            assert cy == pytest.approx(y, abs=1e-3)
            checked += 1
    assert checked >= 8
    as_tensor = transform_points(torch.tensor(pts, dtype=torch.float32), params)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor.numpy(), transform_points(pts, params), atol=1e-4)


def test_tensor_input_keeps_device_and_matches_numpy():
    frames = coord_frames()
    t = ClipTransform(resize_short=20, crop=16, train=True, flip=True)
    a = t(frames, rng(3))
    b = t(torch.from_numpy(frames), rng(3))
    assert b.device == torch.from_numpy(frames).device
    assert torch.equal(a, b)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="either resize_short"):
        ClipTransform(256, resize_to=(224, 224), train=False)
    with pytest.raises(ValueError, match="unknown normalization 'imagenet21k'"):
        ClipTransform(train=False, normalization="imagenet21k")
    t = ClipTransform(None, crop=64, train=False)
    with pytest.raises(ValueError, match="crop 64x64 is larger than the frame 40x57"):
        t(coord_frames(), rng())
    with pytest.raises(ValueError, match="uint8 frames"):
        ClipTransform(None, crop=None, train=False)(coord_frames().astype(np.float32), rng())
