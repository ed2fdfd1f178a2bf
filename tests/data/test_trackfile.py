import math

import numpy as np
import pytest

from fsar.data.trackfile import TrackFile, canonical_json, uniform_rows
from fsar.errors import TrackFileError


def make_file(T=5, N=6, seed=0, **changes):
    rng = np.random.default_rng(seed)
    fields = dict(
        tracks=(rng.random((T, N, 2)) * [40, 30]).astype(np.float32),
        visibility=rng.random((T, N)) > 0.3,
        query_frame=np.array([0, 0, 0, 2, 2, 3][:N], dtype=np.int32),
        frame_size=(30, 40),
        timeline=np.arange(T, dtype=np.int64) * 3,
        fps=25.0,
        tracker="lk",
        params={"grid_size": 4, "tracker": {"win_size": 15}},
        sampled_indices=np.array([0, 2, 5], dtype=np.int64),
        num_points_total=12,
        video_id="cls/vid 1",
    )
    fields.update(changes)
    return TrackFile(**fields)


def test_round_trip_keeps_every_field_and_dtype(tmp_path):
    original = make_file()
    path = original.save(tmp_path / "sub" / "v.npz")
    loaded = TrackFile.load(path)
    for key in ("tracks", "visibility", "query_frame", "timeline", "sampled_indices"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(original, key))
        assert getattr(loaded, key).dtype == getattr(original, key).dtype
    assert loaded.frame_size == (30, 40)
    assert loaded.fps == 25.0 and loaded.tracker == "lk" and loaded.video_id == "cls/vid 1"
    assert loaded.params == original.params and loaded.num_points_total == 12
    assert loaded.format_version == 1
    # Atomic write leaves no temporary file behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.npz"]


def test_saved_file_loads_without_pickle(tmp_path):
    path = make_file().save(tmp_path / "v.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert str(archive["tracker"]) == "lk"
        assert archive["tracks"].shape == (5, 6, 2)


def test_unknown_fps_round_trips_as_nan(tmp_path):
    loaded = TrackFile.load(make_file(fps=math.nan).save(tmp_path / "v.npz"))
    assert math.isnan(loaded.fps)


def test_params_json_is_canonical():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert make_file(params={"x": 1, "a": 2}).params_json == make_file(params={"a": 2, "x": 1}).params_json
    with pytest.raises(ValueError, match="JSON"):
        canonical_json({"a": object()})


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        (dict(tracks=np.zeros((5, 6, 2), np.float64)), "tracks"),
        (dict(visibility=np.zeros((5, 7), bool)), "visibility"),
        (dict(query_frame=np.array([0, 0, 0, 2, 2, 5], np.int32)), "query_frame"),
        (dict(timeline=np.array([0, 1, 1, 2, 3], np.int64)), "timeline"),
        (dict(sampled_indices=np.array([2, 0], np.int64)), "sampled_indices"),
        (dict(sampled_indices=np.array([0, 6], np.int64)), "sampled_indices"),
        (dict(num_points_total=3), "num_points_total"),
        (dict(fps=-1.0), "fps"),
        (dict(frame_size=(0, 40)), "frame_size"),
    ],
)
def test_validation_names_the_key(tmp_path, changes, key):
    bad = make_file(**changes)
    with pytest.raises(TrackFileError, match=f"key '{key}'") as info:
        bad.save(tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value)
    assert not (tmp_path / "bad.npz").exists()


def test_nan_positions_are_rejected(tmp_path):
    tracks = make_file().tracks.copy()
    tracks[1, 2, 0] = np.nan
    with pytest.raises(TrackFileError, match="NaN"):
        make_file(tracks=tracks).save(tmp_path / "v.npz")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(TrackFileError, match="missing.npz: no such track file"):
        TrackFile.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(TrackFileError, match="garbage.npz: not a readable"):
        TrackFile.load(garbage)
    partial = tmp_path / "partial.npz"
    np.savez(partial, tracks=np.zeros((1, 1, 2), np.float32))
    with pytest.raises(TrackFileError, match="partial.npz: missing key"):
        TrackFile.load(partial)


def test_tampered_archive_fails_validation(tmp_path):
    path = make_file().save(tmp_path / "v.npz")
    with np.load(path) as archive:
        data = dict(archive)
    data["visibility"] = data["visibility"][:, :3]
    np.savez(path, **data)
    with pytest.raises(TrackFileError, match="v.npz: key 'visibility'"):
        TrackFile.load(path)


def test_select_gives_sampled_points_query_mask_and_video_frames():
    track_file = make_file()
    rows = uniform_rows(track_file.num_frames, 3)
    np.testing.assert_array_equal(rows, [0, 2, 4])
    chosen = track_file.select(rows)
    assert chosen.tracks.shape == (3, 3, 2)
    np.testing.assert_array_equal(chosen.tracks, track_file.tracks[[0, 2, 4]][:, [0, 2, 5]])
    np.testing.assert_array_equal(chosen.video_frames, [0, 6, 12])
    # query frames of points 0, 2, 5 are 0, 0, 3: the last one exists only from row 3 on.
    np.testing.assert_array_equal(chosen.query_mask, [[1, 1, 0], [1, 1, 0], [1, 1, 1]])
    assert track_file.select([1], points="all").tracks.shape == (1, 6, 2)
    with pytest.raises(IndexError):
        track_file.select([5])


def test_uniform_rows_matches_tats_selection():
    np.testing.assert_array_equal(uniform_rows(45, 8), [0, 6, 12, 18, 25, 31, 37, 44])


def test_normalize_tracks_conventions():
    from fsar.data.trackfile import normalize_tracks

    xy = np.array([[0.0, 0.0], [39.0, 29.0], [20.0, 15.0]], np.float32)  # frame 30 x 40
    np.testing.assert_allclose(
        normalize_tracks(xy, (30, 40)), [[-1, -1], [0.95, 29 / 15 - 1], [0, 0]], atol=1e-6
    )
    np.testing.assert_allclose(
        normalize_tracks(xy, (30, 40), "align_corners")[:2], [[-1, -1], [1, 1]], atol=1e-6
    )
    np.testing.assert_allclose(
        normalize_tracks(xy, (30, 40), "pixel_centers")[:2],
        [[-39 / 40, -29 / 30], [39 / 40, 29 / 30]],
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="unknown convention"):
        normalize_tracks(xy, (30, 40), "other")
