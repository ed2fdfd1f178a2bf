import numpy as np
import pytest
import torch

from fsar.data.batch import ClipBatch
from fsar.data.benchmarks import VideoRecord
from fsar.data.clips import ClipLoader, count_short_clips, make_clip_batch
from fsar.data.sampling import build_frame_sampler
from fsar.data.transforms import ClipTransform
from fsar.errors import VideoError
from tests.helpers import BLUE_BASE, BLUE_STEP, make_frames, write_encoded_video, write_frame_folder


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    long = write_encoded_video(root / "a" / "long.mp4", make_frames(20, 32, 48, seed=0))
    short = write_frame_folder(root / "a" / "short", make_frames(5, 32, 48, seed=1), pattern="f{i}.png")
    return {
        "long": VideoRecord("long", "a", 0, long, 1),
        "short": VideoRecord("short", "a", 0, short, 2),
        "missing": VideoRecord("gone", "a", 0, None, 3),
    }


def make_loader(T=8, sampler="ta2n"):
    return ClipLoader(
        T,
        build_frame_sampler(sampler),
        ClipTransform(None, crop=24, train=True, flip=True, normalization="none"),
        ClipTransform(None, crop=24, train=False, normalization="none"),
    )


def blue_index(clip_frames):
    """Frame index from the blue plane (normalization 'none' -> x * 255)."""
    return torch.round(
        (clip_frames[:, 2].median(-1).values.median(-1).values * 255 - BLUE_BASE) / BLUE_STEP
    ).long()


def test_load_test_clip_follows_the_sampler(videos):
    clip = make_loader().load(videos["long"], train=False, rng=rng())
    assert clip.frames.shape == (8, 3, 24, 24) and clip.frames.dtype == torch.float32
    assert clip.indices.tolist() == [1, 3, 5, 8, 10, 13, 15, 18]  # ta2n test rule: floor(linspace(1, 18, 8))
    assert clip.num_frames_in_video == 20 and not clip.short
    assert blue_index(clip.frames).tolist() == clip.indices.tolist()  # the pixels are those frames
    assert (clip.params.crop_top, clip.params.crop_left, clip.params.flip) == (4, 12, False)


def test_train_clip_is_seeded(videos):
    loader = make_loader()
    a = loader.load(videos["long"], True, rng(5))
    b = loader.load(videos["long"], True, rng(5))
    assert torch.equal(a.frames, b.frames) and np.array_equal(a.indices, b.indices) and a.params == b.params
    draws = {(tuple(loader.load(videos["long"], True, rng(s)).indices), s) for s in range(8)}
    assert len({d[0] for d in draws}) > 1


def test_short_video_is_padded_and_flagged(videos):
    loader = make_loader()
    clips = [loader.load(videos[k], False, rng()) for k in ("long", "short", "short")]
    assert clips[1].short and clips[1].num_frames_in_video == 5
    assert clips[1].indices.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert blue_index(clips[1].frames).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert count_short_clips(clips) == 2


def test_missing_and_unreadable_videos_raise(videos, tmp_path):
    loader = make_loader()
    with pytest.raises(VideoError, match=r"a/gone: video listed in line 3 of the split file is missing"):
        loader.load(videos["missing"], False, rng())
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match=r"bad\.mp4"):
        loader.load(VideoRecord("bad", "a", 0, bad, 4), False, rng())


def test_frame_count_is_decoded_once_per_loader(videos):
    loader = make_loader()
    first = loader.open(videos["long"])
    loader.load_video(first, False, rng())
    # a first read is one decode of the whole file: the count is verified while the sampled frames are read
    assert first.last_decode_stats["frames"] == 20 and first.last_decode_stats["passes"] == 1
    again = loader.open(videos["long"])
    assert again.num_frames == 20 and again.last_decode_stats["frames"] == 0  # count remembered: no decode
    clip = loader.load_video(again, False, rng())
    assert clip.num_frames_in_video == 20 and again.last_decode_stats["frames"] == 19  # up to index 18
    assert make_loader().open(videos["long"]).last_decode_stats == {"frames": 0, "packets": 0, "passes": 0}


@pytest.mark.parametrize("listed", [None, 26, 14, 5])
def test_wrong_listed_count_gives_the_clip_of_the_exact_count(videos, monkeypatch, listed):
    """A container count that is missing or wrong (too high, too low, below T) never changes the clip: the loader
    rewinds its generator and draws again with the exact count, so train clips equal a known-count load."""
    import fsar.data.video as video_module

    exact = {seed: make_loader().load(videos["long"], True, rng(seed)) for seed in range(3)}
    for seed in range(3):  # the reference: count known in advance, no container metadata involved
        loader = make_loader()
        loader._frame_counts[videos["long"].path] = 20
        known = loader.load(videos["long"], True, rng(seed))
        assert np.array_equal(known.indices, exact[seed].indices) and torch.equal(
            known.frames, exact[seed].frames
        )
    monkeypatch.setattr(
        video_module.EncodedVideo, "listed_frame_count", staticmethod(lambda container: listed)
    )
    for seed in range(3):
        generator = rng(seed)
        video = make_loader().open(videos["long"])
        clip = make_loader().load_video(video, True, generator)
        assert clip.num_frames_in_video == 20 and not clip.short
        assert np.array_equal(clip.indices, exact[seed].indices)
        assert torch.equal(clip.frames, exact[seed].frames) and clip.params == exact[seed].params
        assert blue_index_raw(video.frames(clip.indices)).tolist() == clip.indices.tolist()
        reference = rng(seed)
        make_loader().load(videos["long"], True, reference)
        assert generator.random() == reference.random()  # the generator ends in the same state


def blue_index_raw(frames):
    from tests.helpers import frame_index_from_blue

    return frame_index_from_blue(frames)


def test_make_clip_batch(videos):
    loader = make_loader()
    clips = [loader.load(videos[k], False, rng()) for k in ("long", "short")]
    batch = make_clip_batch(clips, [1, 0], [7, 3], ["long", "short"])
    assert isinstance(batch, ClipBatch)
    assert batch.frames.shape == (2, 8, 3, 24, 24)
    assert batch.labels.tolist() == [1, 0] and batch.labels.dtype == torch.long
    assert batch.global_labels.tolist() == [7, 3] and batch.video_ids == ["long", "short"]
    assert torch.equal(batch.frames[1], clips[1].frames)
    with pytest.raises(ValueError, match=r"2 clips but \{'labels': 1\}"):
        make_clip_batch(clips, [1], [7, 3], ["long", "short"])
    other = ClipLoader(
        8, build_frame_sampler("uniform"), *(ClipTransform(None, crop=16, train=t) for t in (1, 0))
    )
    with pytest.raises(ValueError, match="different shapes"):
        make_clip_batch([clips[0], other.load(videos["long"], False, rng())], [0, 1], [0, 1], ["x", "y"])


def test_clip_cache_gives_identical_clips_and_skips_decoding(videos, monkeypatch):
    plain = make_loader()
    cached = ClipLoader(
        8, build_frame_sampler("ta2n"), plain.transform_train, plain.transform_test, cache_clips=2
    )
    for seed in range(4):  # train draws differ in frames, crop and flip; each must equal the uncached load
        for train in (True, False):
            a = plain.load(videos["long"], train, rng(seed))
            b = cached.load(videos["long"], train, rng(seed))
            assert (
                torch.equal(a.frames, b.frames)
                and np.array_equal(a.indices, b.indices)
                and a.params == b.params
            )
    assert len(cached._cache) == 2  # bounded: least recently used clips dropped
    expected = plain.load(videos["long"], False, rng(0)).frames
    cached.load(videos["long"], False, rng(0))  # most recently used now
    import fsar.data.video as video_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the clip is cached")

    monkeypatch.setattr(video_module.EncodedVideo, "frames", no_decoding)
    assert torch.equal(cached.load(videos["long"], False, rng(0)).frames, expected)


def test_rgb_diff_modality_stacks_frame_differences():
    from fsar.data.modality import apply_modality

    frames = torch.arange(4, dtype=torch.float32).reshape(4, 1, 1, 1).expand(4, 3, 2, 2).clone()
    out = apply_modality(frames, "rgb_diff")
    assert out.shape == (4, 6, 2, 2)
    assert torch.equal(out[:, :3], frames)
    assert out[0, 3:].abs().sum() == 0 and torch.all(out[1:, 3:] == 1.0)
    assert apply_modality(frames, "rgb") is frames
    with pytest.raises(ValueError, match="unknown modality"):
        apply_modality(frames, "flow")


def test_train_augment_applies_to_train_clips_only(videos):
    plain = make_loader()
    calls = []

    def invert(frames, generator):
        calls.append(frames.shape)
        return 255 - frames

    aug = ClipLoader(
        8, build_frame_sampler("ta2n"), plain.transform_train, plain.transform_test, train_augment=invert
    )
    test_a, test_b = plain.load(videos["long"], False, rng(1)), aug.load(videos["long"], False, rng(1))
    assert torch.equal(test_a.frames, test_b.frames) and not calls
    train_a, train_b = plain.load(videos["long"], True, rng(1)), aug.load(videos["long"], True, rng(1))
    assert torch.allclose(train_b.frames, 1.0 - train_a.frames, atol=1e-6) and len(calls) == 1
