"""The reader of original TATs pickles, on pickles built here with the same structure."""

import pickle

import numpy as np
import pytest
import torch

from fsar.errors import TrackFileError
from fsar.tracking.reference_pickle import read_reference_pickle
from fsar.tracking.trackfile import TrackFile


def reference_dict(T=6, N=300, seed=0):
    rng = np.random.default_rng(seed)
    tracks = torch.from_numpy(rng.random((1, T, N, 2)) * [319, 239]).half()
    queries = np.sort(rng.integers(0, min(T, 5), N))
    queries[:256] = 0
    vis = torch.from_numpy(rng.random((1, T, N)) > 0.2) & (
        torch.arange(T)[None, :, None] >= torch.from_numpy(queries)
    )
    subset = rng.choice(N, 256, replace=False)  # unsorted, like np.random.choice
    return {
        "pred_tracks": tracks,
        "pred_visibility": vis,
        "per_point_queries": queries,
        "total_points": 7 * 256,
        "random": {256: {"sampled_indices": subset, "ids_to_consider": None}},
    }


def test_pickle_converts_to_a_track_file(tmp_path):
    data = reference_dict()
    path = tmp_path / "vid123.pkl"
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    track_file = read_reference_pickle(path, (240, 320), num_video_frames=30, fps=12.0)
    assert isinstance(track_file, TrackFile)
    assert track_file.tracks.dtype == np.float32 and track_file.tracks.shape == (6, 300, 2)
    np.testing.assert_array_equal(track_file.tracks, data["pred_tracks"][0].float().numpy())
    np.testing.assert_array_equal(track_file.visibility, data["pred_visibility"][0].numpy())
    np.testing.assert_array_equal(track_file.query_frame, data["per_point_queries"])
    np.testing.assert_array_equal(track_file.sampled_indices, np.sort(data["random"][256]["sampled_indices"]))
    # TATs aligns T track rows with the video by int(linspace(0, len - 1, T)).
    np.testing.assert_array_equal(track_file.timeline, [0, 5, 11, 17, 23, 29])
    assert track_file.num_points_total == 1792 and track_file.video_id == "vid123"
    assert track_file.frame_size == (240, 320) and track_file.fps == 12.0
    # It can be stored as .npz and read back without pickle.
    again = TrackFile.load(track_file.save(tmp_path / "vid123.npz"))
    np.testing.assert_array_equal(again.tracks, track_file.tracks)


def test_torch_save_archives_and_default_timeline(tmp_path):
    path = tmp_path / "v.pkl"
    torch.save(reference_dict(T=4), path)
    track_file = read_reference_pickle(path, (240, 320))
    np.testing.assert_array_equal(track_file.timeline, np.arange(4))
    assert np.isnan(track_file.fps)


def test_errors_name_the_file_and_key(tmp_path):
    data = reference_dict()
    del data["per_point_queries"]
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(TrackFileError, match="broken.pkl: missing key\\(s\\) per_point_queries"):
        read_reference_pickle(path, (240, 320))

    data = reference_dict()
    data["random"] = {128: {"sampled_indices": np.arange(128)}}
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(TrackFileError, match="no subset of size 256 \\(available: \\[128\\]\\)"):
        read_reference_pickle(path, (240, 320))

    data = reference_dict()
    data["pred_visibility"] = data["pred_visibility"][:, :, :10]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(TrackFileError, match="key 'pred_visibility'"):
        read_reference_pickle(path, (240, 320))

    path.write_bytes(pickle.dumps(reference_dict(T=6)))
    with pytest.raises(TrackFileError, match="the video has 3 frames but the pickle has 6"):
        read_reference_pickle(path, (240, 320), num_video_frames=3)

    path.write_bytes(b"\x00garbage")
    with pytest.raises(TrackFileError, match="cannot unpickle"):
        read_reference_pickle(path, (240, 320))
