"""The CoTracker adapter against a stub ``cotracker`` package with the predictor's interface (no real CoTracker)."""

import sys
import types

import numpy as np
import pytest
import torch

from fsar.tracking.cotracker import CoTrackerTracker
from fsar.tracking.queries import Queries
from fsar.tracking.registry import TRACKERS


class StubPredictor(torch.nn.Module):
    """Moves every query point by (+1, +2) px per frame after its query frame; visible iff x < 30.
    Records every call so the test can check what the adapter passed in."""

    instances: list = []

    def __init__(self, checkpoint, **kwargs):
        super().__init__()
        self.checkpoint, self.kwargs, self.calls = checkpoint, kwargs, []
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        StubPredictor.instances.append(self)

    def forward(self, video, queries=None, backward_tracking=False, **unused):
        self.calls.append((video.clone(), queries.clone(), backward_tracking))
        B, T = video.shape[:2]
        t = torch.arange(T, dtype=torch.float32)[None, :, None]
        offset = (t - queries[:, None, :, 0]).clamp(min=0)  # [1, T, N]
        tracks = queries[:, None, :, 1:].repeat(1, T, 1, 1).clone()
        tracks[..., 0] += offset
        tracks[..., 1] += 2 * offset
        visibility = (tracks[..., 0] < 30).float()[..., None] * 0.9  # probabilities [1, T, N, 1]
        return tracks, visibility


@pytest.fixture
def stub_cotracker(monkeypatch):
    package = types.ModuleType("cotracker")
    predictor_module = types.ModuleType("cotracker.predictor")
    predictor_module.CoTrackerPredictor = StubPredictor
    package.predictor = predictor_module
    monkeypatch.setitem(sys.modules, "cotracker", package)
    monkeypatch.setitem(sys.modules, "cotracker.predictor", predictor_module)
    StubPredictor.instances.clear()
    return StubPredictor


def test_adapter_follows_the_predictor_interface(stub_cotracker, tmp_path):
    checkpoint = tmp_path / "scaled_offline.pth"
    checkpoint.write_bytes(b"stub")
    tracker = TRACKERS.create("cotracker", checkpoint=checkpoint, predictor_kwargs={"window_len": 60})
    frames = np.arange(5 * 8 * 10 * 3, dtype=np.int64).reshape(5, 8, 10, 3).astype(np.uint8)
    queries = Queries(np.array([0, 2, 0], np.int32), np.array([[1, 2], [3, 4], [9, 7]], np.float32))
    tracks, vis = tracker.track(frames, queries)

    (predictor,) = stub_cotracker.instances
    assert predictor.checkpoint == str(checkpoint) and predictor.kwargs == {"window_len": 60}
    assert len(predictor.calls) == 2  # one call per query frame, like TATs
    video, first_queries, backward = predictor.calls[0]
    assert video.shape == (1, 5, 3, 8, 10) and video.dtype == torch.float32
    assert torch.equal(
        video[0, :, :, 2, 3], torch.from_numpy(frames[:, 2, 3, :]).float()
    )  # 0..255, RGB order
    assert first_queries.shape == (1, 2, 3)
    assert torch.equal(first_queries[0], torch.tensor([[0.0, 1, 2], [0, 9, 7]]))
    assert torch.equal(predictor.calls[1][1][0], torch.tensor([[2.0, 3, 4]]))
    assert backward is False

    assert tracks.shape == (5, 3, 2) and tracks.dtype == np.float32 and vis.dtype == bool
    np.testing.assert_allclose(tracks[4, 0], [1 + 4, 2 + 8])
    np.testing.assert_allclose(tracks[4, 1], [3 + 2, 4 + 4])
    np.testing.assert_allclose(tracks[1, 1], [3, 4])  # before its query frame: the predictor's value
    assert vis.all()  # 0.9 > 0.5 everywhere, x stays < 30
    assert tracker.params()["checkpoint"] == "scaled_offline.pth"


def test_boolean_visibility_and_shape_check(stub_cotracker):
    class BoolPredictor(StubPredictor):
        def forward(self, video, queries=None, backward_tracking=False):
            tracks, _ = super().forward(video, queries, backward_tracking)
            return tracks, tracks[..., 0] < 3

    tracker = CoTrackerTracker(predictor=BoolPredictor("none"), backward_tracking=True)
    frames = np.zeros((4, 6, 6, 3), np.uint8)
    tracks, vis = tracker.track(frames, Queries(np.zeros(1, np.int32), np.array([[1.0, 1.0]], np.float32)))
    np.testing.assert_array_equal(vis[:, 0], [True, True, False, False])

    class WrongShape(StubPredictor):
        def forward(self, video, queries=None, backward_tracking=False):
            tracks, vis = super().forward(video, queries, backward_tracking)
            return tracks[:, :-1], vis[:, :-1]

    with pytest.raises(RuntimeError, match="expected \\(1, 4, 1, 2\\)"):
        CoTrackerTracker(predictor=WrongShape("none")).track(
            frames, Queries(np.zeros(1, np.int32), np.array([[1.0, 1.0]], np.float32))
        )


def test_missing_package_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cotracker", None)  # makes `import cotracker` fail
    with pytest.raises(ModuleNotFoundError, match="'cotracker' is not importable.*pip install -e"):
        CoTrackerTracker(checkpoint=tmp_path / "x.pth")


def test_missing_checkpoint_error_names_the_path(stub_cotracker, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth does not exist.*never downloads"):
        CoTrackerTracker(checkpoint=tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="checkpoint path is required"):
        CoTrackerTracker()
    assert not stub_cotracker.instances  # nothing built
