import math

import numpy as np
import pytest

from fsar.tracking.metrics import TrackingAccuracy, evaluate_tracks


def test_known_errors_give_exact_mean_and_deltas():
    gt = np.zeros((2, 5, 2))
    pred = gt.copy()
    # frame 1 errors: 0.5, 1.0 (not < 1), 3 (3-4-5 triangle gives 5), 10, 20
    pred[1, :, 0] = [0.5, 1.0, 3.0, 6.0, 20.0]
    pred[1, :, 1] = [0.0, 0.0, 4.0, 8.0, 0.0]
    vis = np.ones((2, 5), bool)
    acc = evaluate_tracks(pred, vis, gt, vis, query_frame=np.zeros(5, int))
    # only frame 1 is evaluated (frame 0 is the query frame)
    assert acc.num_evaluated == 5
    assert acc.mean_error == pytest.approx((0.5 + 1 + 5 + 10 + 20) / 5)
    assert [acc.delta(d) for d in (1, 2, 4, 8, 16)] == [0.2, 0.4, 0.4, 0.6, 0.8]
    assert acc.average_delta == pytest.approx(np.mean([0.2, 0.4, 0.4, 0.6, 0.8]))
    assert acc.occlusion_accuracy == 1.0


def test_invisible_ground_truth_is_excluded_and_occlusion_is_scored():
    gt = np.zeros((3, 2, 2))
    pred = gt + 100.0  # huge error wherever evaluated
    gt_vis = np.array([[1, 1], [0, 1], [0, 0]], bool)
    pred_vis = np.array([[1, 1], [0, 0], [1, 0]], bool)
    acc = evaluate_tracks(pred, pred_vis, gt, gt_vis, query_frame=np.array([0, 0]))
    assert acc.num_evaluated == 1  # only (t=1, n=1)
    assert acc.mean_error == pytest.approx(100 * math.sqrt(2))
    # occlusion over t > 0: (1,0) ok, (1,1) wrong, (2,0) wrong, (2,1) ok
    assert acc.occlusion_accuracy == 0.5


def test_without_query_frames_every_frame_counts():
    gt = np.zeros((2, 1, 2))
    pred = gt.copy()
    pred[0, 0] = [3, 0]
    acc = evaluate_tracks(pred, np.ones((2, 1), bool), gt, np.ones((2, 1), bool))
    assert acc.num_evaluated == 2 and acc.mean_error == 1.5


def test_accuracies_add_up_exactly():
    rng = np.random.default_rng(0)
    gt = rng.random((4, 6, 2)) * 20
    pred = gt + rng.normal(0, 3, gt.shape)
    vis = rng.random((4, 6)) > 0.3
    whole = evaluate_tracks(pred, vis, gt, vis)
    parts = evaluate_tracks(pred[:, :3], vis[:, :3], gt[:, :3], vis[:, :3]) + evaluate_tracks(
        pred[:, 3:], vis[:, 3:], gt[:, 3:], vis[:, 3:]
    )
    assert parts.num_evaluated == whole.num_evaluated and parts.num_videos == 2
    assert parts.mean_error == pytest.approx(whole.mean_error)
    assert parts.num_within == whole.num_within
    summary = parts.as_dict()
    assert set(summary) >= {"mean_error", "delta_1", "delta_16", "average_delta", "occlusion_accuracy"}


def test_empty_and_invalid_inputs():
    assert math.isnan(TrackingAccuracy().mean_error)
    with pytest.raises(ValueError, match="tracks must both be"):
        evaluate_tracks(
            np.zeros((2, 3, 2)), np.ones((2, 3), bool), np.zeros((2, 4, 2)), np.ones((2, 4), bool)
        )
    pred = np.full((2, 1, 2), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_tracks(pred, np.ones((2, 1), bool), np.zeros((2, 1, 2)), np.ones((2, 1), bool))
