"""Semantic query points (Trokens, trokens.md §4): clustering, peak frames, k-means points, cluster ids in the track
file, cluster-proportional sampling at load time, and `fsar track --query-points semantic`."""

from __future__ import annotations

import numpy as np
import pytest

from fsar.cli.main import main
from fsar.data.trackfile import TrackFile, cluster_sample
from fsar.errors import FsarError, TrackFileError
from fsar.tracking.runner import TrackingSettings, semantic_subset, track_frames
from fsar.tracking.semantic import SemanticRule, build_semantic_queries, cluster_patches, cluster_query_points
from tests.tracking.test_cotracker import stub_cotracker  # noqa: F401  (fixture)
from tests.tracking.video_fixtures import translating_texture, write_video


# ---------------------------------------------------------------------------------------------- load-time sampling
def test_cluster_sample_allocates_in_proportion_to_cluster_size():
    ids = np.array([0] * 60 + [1] * 20 + [2] * 20, dtype=np.int32)
    for seed in range(5):
        out = cluster_sample(ids, 10, np.random.default_rng(seed))
        assert (
            out.shape == (10,) and out.dtype == np.int64 and len(np.unique(out)) == 10
        )  # big clusters: no repeats
        # 1 + int(7 * n_c / 100) = 5, 2, 2 points, one more to a cluster drawn by size
        per_cluster = np.bincount(ids[out], minlength=3)
        assert per_cluster.sum() == 10 and per_cluster[0] in (5, 6) and per_cluster[1] in (2, 3)
        assert per_cluster[2] in (2, 3) and np.all(np.diff(out) > 0)  # kept ids in original order
    assert np.array_equal(
        cluster_sample(ids, 10, np.random.default_rng(3)), cluster_sample(ids, 10, np.random.default_rng(3))
    )
    assert not np.array_equal(
        cluster_sample(ids, 10, np.random.default_rng(3)), cluster_sample(ids, 10, np.random.default_rng(4))
    )


def test_cluster_sample_with_more_clusters_than_points_takes_one_per_drawn_cluster():
    ids = np.arange(12, dtype=np.int32).repeat(2)  # 12 clusters of 2
    out = cluster_sample(ids, 5, np.random.default_rng(0))
    assert len(out) == 5 and len(np.unique(ids[out])) == 5


def test_small_clusters_collapse_duplicates_and_top_up_from_the_kept_ids():
    ids = np.array(
        [0, 1, 1], dtype=np.int32
    )  # 3 points, 8 wanted: draws with replacement, then top-up repeats
    out = cluster_sample(ids, 8, np.random.default_rng(0))
    assert len(out) == 8 and set(out.tolist()) <= {0, 1, 2}
    kept = np.unique(out)
    assert np.array_equal(out[: len(kept)], kept)  # the unique kept ids first, in id order, then the top-ups
    with pytest.raises(ValueError, match="count must be >= 1"):
        cluster_sample(ids, 0, np.random.default_rng(0))


def test_semantic_subset_is_unique_sorted_and_refuses_too_few_points():
    ids = np.array([0, 0, 0, 0, 1, 2], dtype=np.int32)
    sub = semantic_subset(ids, 5, np.random.default_rng(0))
    assert len(sub) == 5 and np.all(np.diff(sub) > 0)
    with pytest.raises(ValueError, match="only 6 semantic query points"):
        semantic_subset(ids, 7, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------- query points
def test_peak_frame_and_kmeans_points_per_cluster_by_hand():
    # 3 clustering frames of a 2x2 patch grid on an 8x8 video: cluster 1 covers the right column in frame 0 and
    # 3 patches in frame 2 (its peak); cluster 0 is everything else
    labels = np.zeros((3, 2, 2), dtype=np.int64)
    labels[0, :, 1] = 1
    labels[2] = [[1, 1], [1, 0]]
    queries = cluster_query_points(labels, np.array([0, 5, 9]), (8, 8), 4, np.random.default_rng(0))
    assert queries.cluster.dtype == np.int32 and sorted(set(queries.cluster.tolist())) == [0, 1]
    q0, q1 = queries.cluster == 0, queries.cluster == 1
    assert set(queries.query_frame[q0].tolist()) == {5}  # cluster 0 peaks in frame 1 (4 patches): row 5
    assert set(queries.query_frame[q1].tolist()) == {9}  # cluster 1 peaks in frame 2: row 9
    assert 1 <= q1.sum() <= 4 and 1 <= q0.sum() <= 4
    x, y = queries.xy[q1, 0], queries.xy[q1, 1]
    assert np.all(~((x >= 4) & (y >= 4)))  # inside cluster 1's mask: not the bottom-right patch
    assert np.all(queries.xy == np.round(queries.xy))  # pixel centres
    small = cluster_query_points(labels, np.array([0, 5, 9]), (8, 8), 100, np.random.default_rng(0))
    assert (small.cluster == 1).sum() == 48  # fewer pixels than points: every pixel of the mask


def test_semantic_queries_separate_regions_with_different_features():
    # left half red, right half blue; the stand-in encoder returns the mean colour of each 8x8 patch
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    frames[:, :, :16, 0] = 200
    frames[:, :, 16:, 2] = 200

    def encoder(x):
        k = x.shape[0]
        return x.reshape(k, 4, 8, 4, 8, 3).mean(axis=(2, 4)).astype(np.float32) + 1.0

    rule = SemanticRule(backbone="stand-in", clusters=2, points_per_cluster=5)
    queries = build_semantic_queries(frames, encoder, rule, np.random.default_rng(1))
    assert len(queries) == 10
    for cid in (0, 1):
        xs = queries.xy[queries.cluster == cid, 0]
        assert np.all(xs < 16) or np.all(xs >= 16)  # each cluster's points lie in one colour region
    assert set((queries.xy[:, 0] < 16).tolist()) == {True, False}
    labels = cluster_patches(encoder(frames), 2, np.random.default_rng(0))
    assert labels.shape == (4, 4, 4) and labels[0, 0, 0] == 0 and labels[0, 0, 3] == 1
    with pytest.raises(ValueError, match="finite patch features"):
        build_semantic_queries(frames, lambda x: np.zeros((1, 2, 2, 3)), rule, np.random.default_rng(0))


def test_semantic_rule_validation_and_dinov2_needs_weights():
    with pytest.raises(ValueError, match="clusters must be an integer"):
        SemanticRule(clusters=0)
    with pytest.raises(ValueError, match="unknown normalization"):
        SemanticRule(normalization="zscore")
    with pytest.raises(ValueError, match="needs local weights"):
        TrackingSettings(query_points="semantic").create_query_encoder()


# ---------------------------------------------------------------------------------------------- track files
def test_tracks_with_cluster_ids_round_trip_and_old_files_still_load(tmp_path):
    frames = translating_texture(6, 32, 32, (1.0, 0.0), seed=3)

    def encoder(x):
        return x.reshape(x.shape[0], 4, 8, 4, 8, 3).mean(axis=(2, 4)).astype(np.float32) + 1.0

    settings = TrackingSettings(
        query_points="semantic",
        points=12,
        semantic=SemanticRule(backbone="stand-in", clusters=3, points_per_cluster=6),
    )
    tracker = settings.create_tracker()
    track = track_frames(frames, tracker, settings, video_id="v", encoder=encoder)
    assert track.cluster_id is not None and track.cluster_id.shape == (track.num_points,)
    assert track.num_points == track.num_points_total  # no redundancy filter
    assert track.params["query_points"] == "semantic" and track.params["filter"] == "none"
    assert len(track.sampled_indices) == 12
    again = track_frames(frames, tracker, settings, video_id="v", encoder=encoder)
    assert np.array_equal(again.tracks, track.tracks) and np.array_equal(again.cluster_id, track.cluster_id)
    path = track.save(tmp_path / "v.npz")
    loaded = TrackFile.load(path)
    assert np.array_equal(loaded.cluster_id, track.cluster_id)
    plain = TrackFile.load(TrackFile(**{**loaded.__dict__, "cluster_id": None}).save(tmp_path / "plain.npz"))
    assert plain.cluster_id is None and "cluster_id" not in np.load(tmp_path / "plain.npz").files
    bad = TrackFile(**{**loaded.__dict__, "cluster_id": loaded.cluster_id.astype(np.int64)})
    with pytest.raises(TrackFileError, match="cluster_id"):
        bad.save(tmp_path / "bad.npz")


def test_track_source_draws_per_load_in_training_and_fixed_at_test(tmp_path):
    from types import SimpleNamespace

    from fsar.data.tracks import TrackSource

    n = 40
    rng = np.random.default_rng(0)
    track = TrackFile(
        tracks=rng.random((6, n, 2)).astype(np.float32) * 30,
        visibility=np.ones((6, n), bool),
        query_frame=np.zeros(n, np.int32),
        frame_size=(32, 32),
        timeline=np.arange(6, dtype=np.int64),
        fps=10.0,
        tracker="lk",
        sampled_indices=np.arange(8, dtype=np.int64),
        num_points_total=n,
        video_id="v1",
        cluster_id=np.repeat(np.arange(4, dtype=np.int32), 10),
    )
    track.save(tmp_path / "walk" / "v1.npz")
    record = SimpleNamespace(class_name="walk", video_id="v1")
    source = TrackSource(tmp_path, num_frames=4, point_sampling="cluster", num_points=8)
    path = source.path_for(record)
    test_a = source.point_ids(track.cluster_id, path, record, False, np.random.default_rng(1))
    test_b = source.point_ids(track.cluster_id, path, record, False, np.random.default_rng(2))
    assert np.array_equal(test_a, test_b) and len(test_a) == 8  # fixed per video at test
    train_rng = np.random.default_rng(5)
    state = train_rng.bit_generator.state
    train_a = source.point_ids(track.cluster_id, path, record, True, train_rng)
    assert train_rng.bit_generator.state == state  # the clip's own draws are untouched
    train_b = source.point_ids(track.cluster_id, path, record, True, np.random.default_rng(6))
    assert not np.array_equal(train_a, train_b)
    assert np.array_equal(
        train_a, source.point_ids(track.cluster_id, path, record, True, np.random.default_rng(5))
    )
    fixed = TrackSource(tmp_path, num_frames=4)
    assert fixed.point_ids(track.cluster_id, path, record, True, train_rng) is None  # the file's fixed subset
    with pytest.raises(FsarError, match="needs cluster ids"):
        source.point_ids(None, path, record, True, train_rng)


# ---------------------------------------------------------------------------------------------- command line
def test_fsar_track_semantic_from_the_command_line(tmp_path, capsys):
    videos = tmp_path / "videos"
    write_video(videos / "jump" / "v1.mp4", translating_texture(8, 32, 32, (1.0, 0.5), seed=1), fps=10)
    out = tmp_path / "tracks"
    args = ["track", "--videos", str(videos), "--out", str(out), "--points", "16", "--no-progress"]
    args += ["--query-points", "semantic", "--semantic-option", "backbone=small_cnn", "--semantic-option"]
    args += [
        'backbone_kwargs={"width": 4, "out_channels": 8, "num_blocks": 2}',
        "--semantic-option",
        "image_size=32",
    ]
    args += ["--semantic-option", "clusters=4", "--semantic-option", "points_per_cluster=8"]
    assert main(args) == 0
    track = TrackFile.load(out / "jump" / "v1.npz")
    assert track.cluster_id is not None and track.params["semantic"]["clusters"] == 4
    assert len(track.sampled_indices) == 16 and track.num_points >= 16
    capsys.readouterr()
    bad = ["track", "--videos", str(videos), "--out", str(out), "--semantic-option", "clusters=3"]
    assert main(bad) == 2 and "needs --query-points semantic" in capsys.readouterr().err
    assert main([*bad[:5], "--query-points", "semantic", "--semantic-option", "colour=1"]) == 2
    assert "unknown --semantic-option colour" in capsys.readouterr().err
    assert main([*bad[:5], "--query-points", "semantic"]) == 2
    assert "needs local weights" in capsys.readouterr().err


def test_semantic_queries_go_through_the_cotracker_adapter(stub_cotracker, tmp_path):  # noqa: F811
    checkpoint = tmp_path / "scaled_offline.pth"
    checkpoint.write_bytes(b"stub")
    frames = translating_texture(6, 32, 32, (1.0, 0.0), seed=4)

    def encoder(x):
        return x.reshape(x.shape[0], 4, 8, 4, 8, 3).mean(axis=(2, 4)).astype(np.float32) + 1.0

    settings = TrackingSettings(
        tracker="cotracker",
        tracker_options={"checkpoint": str(checkpoint)},
        query_points="semantic",
        points=8,
        semantic=SemanticRule(backbone="stand-in", clusters=3, points_per_cluster=4),
    )
    track = track_frames(frames, settings.create_tracker(), settings, video_id="v", encoder=encoder)
    (predictor,) = stub_cotracker.instances
    peak_rows = sorted(set(track.query_frame.tolist()))
    assert len(predictor.calls) == len(peak_rows)  # one CoTracker call per peak frame
    assert track.tracker == "cotracker" and track.cluster_id is not None and len(track.sampled_indices) == 8
