"""TrackSource: the clip's tracks and frames, and its cache of selected rows."""

from types import SimpleNamespace

import numpy as np
import pytest

from fsar.data import tracks as tracks_module
from fsar.data.trackfile import TrackFile
from fsar.data.tracks import TrackSource
from fsar.data.transforms import ClipTransform


def write_track(folder, video_id: str, seed: int, n: int = 12, rows: int = 10) -> TrackFile:
    rng = np.random.default_rng(seed)
    track = TrackFile(
        tracks=(rng.random((rows, n, 2)) * 30).astype(np.float32),
        visibility=rng.random((rows, n)) > 0.3,
        query_frame=rng.integers(0, rows, n).astype(np.int32),
        frame_size=(32, 32),
        timeline=np.arange(rows, dtype=np.int64) * 2,
        fps=10.0,
        tracker="lk",
        sampled_indices=np.array([1, 4, 7, 9], dtype=np.int64),
        num_points_total=n,
        video_id=video_id,
    )
    track.save(folder / "walk" / f"{video_id}.npz")
    return track


class FakeVideo:
    def frames(self, idx):
        return np.full((len(idx), 32, 32, 3), 7, dtype=np.uint8)


def fake_loader():
    transform = ClipTransform(
        resize_short=None, resize_to=(16, 16), crop=None, train=False, normalization="none"
    )
    return SimpleNamespace(
        open=lambda record: FakeVideo(),
        train_augment=None,
        transform_train=transform,
        transform_test=transform,
    )


def count_loads(monkeypatch) -> list:
    calls = []
    real = TrackFile.load

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(tracks_module.TrackFile, "load", staticmethod(counting))
    return calls


def test_selected_rows_are_read_once_and_match_the_file(tmp_path, monkeypatch):
    track = write_track(tmp_path, "v1", seed=0)
    calls = count_loads(monkeypatch)
    source = TrackSource(tmp_path, num_frames=4)
    record = SimpleNamespace(class_name="walk", video_id="v1")
    first = source.load(record, fake_loader(), False, np.random.default_rng(0))
    second = source.load(record, fake_loader(), False, np.random.default_rng(0))
    assert len(calls) == 1  # the second load is served from the cache
    rows = np.array([0, 3, 6, 9])  # uniform_rows(10, 4)
    ids = track.sampled_indices
    np.testing.assert_array_equal(source.video_frames(record), track.timeline[rows])
    np.testing.assert_array_equal(first.visibility.numpy(), track.visibility[rows][:, ids])
    np.testing.assert_array_equal(first.query_mask.numpy(), rows[:, None] >= track.query_frame[ids][None, :])
    expected_uv = 2 * track.tracks[rows][:, ids] / 32 - 1
    np.testing.assert_allclose(first.tracks.numpy(), expected_uv, rtol=0, atol=1e-6)
    for a, b in ((first.tracks, second.tracks), (first.query_mask, second.query_mask)):
        assert np.array_equal(a.numpy(), b.numpy())
    # a clip's tensors are copies: changing one never reaches the cache or the next clip
    first.query_mask.fill_(False)
    first.visibility.fill_(False)
    third = source.load(record, fake_loader(), False, np.random.default_rng(0))
    np.testing.assert_array_equal(third.query_mask.numpy(), second.query_mask.numpy())
    np.testing.assert_array_equal(third.visibility.numpy(), second.visibility.numpy())


def test_cache_keeps_the_most_recently_used_files(tmp_path, monkeypatch):
    for k in range(3):
        write_track(tmp_path, f"v{k}", seed=k)
    calls = count_loads(monkeypatch)
    source = TrackSource(tmp_path, num_frames=4, cache_files=2)
    rec = [SimpleNamespace(class_name="walk", video_id=f"v{k}") for k in range(3)]
    for k in (0, 1, 0, 2):  # v1 is the least recently used when v2 arrives
        source.video_frames(rec[k])
    assert [p.stem for p in calls] == ["v0", "v1", "v2"]
    source.video_frames(rec[0])
    assert len(calls) == 3
    source.video_frames(rec[1])
    assert [p.stem for p in calls][-1] == "v1" and len(calls) == 4
    uncached = TrackSource(tmp_path, num_frames=4, cache_files=0)
    uncached.video_frames(rec[0])
    uncached.video_frames(rec[0])
    assert len(calls) == 6


def test_cluster_sampling_indexes_the_cached_rows_of_every_point(tmp_path):
    track = write_track(tmp_path, "v1", seed=3)
    track.cluster_id = np.repeat(np.arange(3, dtype=np.int32), 4)
    track.save(tmp_path / "walk" / "v1.npz")
    source = TrackSource(tmp_path, num_frames=4, point_sampling="cluster", num_points=5)
    record = SimpleNamespace(class_name="walk", video_id="v1")
    clip = source.load(record, fake_loader(), True, np.random.default_rng(11))
    ids = source.point_ids(track.cluster_id, source.path_for(record), record, True, np.random.default_rng(11))
    rows = np.array([0, 3, 6, 9])
    np.testing.assert_array_equal(clip.visibility.numpy(), track.visibility[rows][:, ids])
    np.testing.assert_allclose(clip.tracks.numpy(), 2 * track.tracks[rows][:, ids] / 32 - 1, atol=1e-6)
    with pytest.raises(ValueError):
        TrackSource(tmp_path, num_frames=4, point_sampling="nearest")
