import zlib

import numpy as np
import pytest

from fsar.tracking.filtering import filter_redundant, mask_before_query, sample_subset, video_rng


def constant_tracks(T, positions):
    """[T, N, 2] tracks that stay at the given (x, y) positions."""
    return np.repeat(np.asarray(positions, dtype=np.float32)[None], T, axis=0)


def test_mask_before_query_hides_only_earlier_frames():
    vis = np.ones((4, 3), dtype=bool)
    vis[3, 0] = False
    masked = mask_before_query(vis, np.array([0, 2, 3]))
    np.testing.assert_array_equal(masked, [[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 1]])
    assert vis.all(axis=1)[:3].all()  # input untouched


def test_filter_keeps_first_frame_points_and_drops_nearby_requeries():
    T = 6
    # points 0,1 queried at 0; point 2 (near point 0), point 3 (far) queried at 3
    tracks = constant_tracks(T, [[10, 10], [100, 10], [20, 10], [60, 40]])
    vis = mask_before_query(np.ones((T, 4), bool), np.array([0, 0, 3, 3]))
    keep = filter_redundant(tracks, vis, np.array([0, 0, 3, 3]), max_dist=16)
    np.testing.assert_array_equal(keep, [0, 1, 3])
    assert keep.dtype == np.int64


def test_filter_threshold_is_strict():
    tracks = constant_tracks(3, [[0, 0], [16, 0], [16.01, 0]])
    # point 1 at distance exactly 16 -> dropped; point 2 at 16.01 from point 0 -> kept (compared with kept only)
    keep = filter_redundant(tracks, np.ones((3, 3), bool), np.array([0, 1, 1]), max_dist=16)
    np.testing.assert_array_equal(keep, [0, 2])


def test_filter_uses_mean_distance_over_frames_from_the_query_frame_on():
    T = 5
    tracks = constant_tracks(T, [[0, 0], [0, 0]])
    # Point 1 (queried at 2) is 100 px away before frame 2 (ignored), then 0, 0, 60 px away: mean 20 > 16.
    tracks[:2, 1] = [100, 0]
    tracks[4, 1] = [60, 0]
    vis = np.ones((T, 2), bool)
    np.testing.assert_array_equal(filter_redundant(tracks, vis, np.array([0, 2])), [0, 1])
    # With 30 px at the last frame the mean over frames 2..4 is 10 <= 16: dropped.
    tracks[4, 1] = [30, 0]
    np.testing.assert_array_equal(filter_redundant(tracks, vis, np.array([0, 2])), [0])


def test_filter_only_compares_with_previous_points_visible_at_the_query_frame():
    tracks = constant_tracks(4, [[0, 0], [1, 1]])
    vis = np.ones((4, 2), bool)
    vis[2, 0] = False  # the old point is occluded at the new point's query frame
    np.testing.assert_array_equal(filter_redundant(tracks, vis, np.array([0, 2])), [0, 1])


def test_filter_compares_with_points_kept_from_earlier_requeries_but_not_same_frame():
    tracks = constant_tracks(6, [[0, 0], [100, 100], [101, 100], [100, 101]])
    vis = np.ones((6, 4), bool)
    qf = np.array([0, 2, 2, 4])
    # 1 and 2 are both kept (same query frame, not compared to each other); 3 is close to kept point 1.
    np.testing.assert_array_equal(filter_redundant(tracks, vis, qf), [0, 1, 2])


def test_filter_result_is_independent_of_point_order_within_ids():
    rng = np.random.default_rng(3)
    T, N = 8, 40
    tracks = (rng.random((T, N, 2)) * 100).astype(np.float32)
    qf = np.repeat([0, 3, 5, 6], 10)
    vis = mask_before_query(rng.random((T, N)) > 0.2, qf)
    keep = filter_redundant(tracks, vis, qf)
    assert np.all(np.diff(keep) > 0) and set(range(10)) <= set(keep.tolist())
    # brute force reference
    kept = list(range(10))
    for q in (3, 5, 6):
        prev = [p for p in kept if vis[q, p]]
        new_kept = []
        for n in np.flatnonzero(qf == q):
            d = [np.mean(np.linalg.norm(tracks[q:, n] - tracks[q:, p], axis=1)) for p in prev]
            if not prev or min(d) > 16:
                new_kept.append(int(n))
        kept += new_kept
    np.testing.assert_array_equal(keep, sorted(kept))


def test_video_rng_is_derived_from_seed_and_crc32_of_the_id():
    a = video_rng(0, "abc").integers(0, 1 << 30, 5)
    b = np.random.default_rng([0, zlib.crc32(b"abc")]).integers(0, 1 << 30, 5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, video_rng(1, "abc").integers(0, 1 << 30, 5))
    assert not np.array_equal(a, video_rng(0, "abd").integers(0, 1 << 30, 5))


def test_sample_subset_is_seeded_sorted_and_distinct():
    first = sample_subset(1000, 256, video_rng(0, "v1"))
    again = sample_subset(1000, 256, video_rng(0, "v1"))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.int64 and first.shape == (256,)
    assert np.all(np.diff(first) > 0) and first.min() >= 0 and first.max() < 1000
    assert not np.array_equal(first, sample_subset(1000, 256, video_rng(0, "v2")))
    np.testing.assert_array_equal(sample_subset(256, 256, video_rng(0, "v")), np.arange(256))


def test_sample_subset_never_pads():
    with pytest.raises(ValueError, match="only 100 points remain"):
        sample_subset(100, 256, video_rng(0, "v"))


def test_video_rng_streams_are_independent_and_stream_0_is_unchanged():
    base = np.random.default_rng([3, zlib.crc32(b"v")]).integers(0, 1 << 30, 5)
    np.testing.assert_array_equal(video_rng(3, "v", stream=0).integers(0, 1 << 30, 5), base)
    one = video_rng(3, "v", stream=1).integers(0, 1 << 30, 5)
    np.testing.assert_array_equal(
        one, np.random.default_rng([3, zlib.crc32(b"v"), 1]).integers(0, 1 << 30, 5)
    )
    assert not np.array_equal(one, base)
    with pytest.raises(ValueError, match="stream must be >= 0"):
        video_rng(0, "v", stream=-1)


def test_sample_subset_takes_preferred_points_first():
    preferred = np.zeros(100, bool)
    preferred[[3, 10, 50, 99]] = True
    few = sample_subset(100, 10, video_rng(0, "v"), preferred)
    assert set(np.flatnonzero(preferred)) <= set(few.tolist()) and len(few) == 10
    assert np.all(np.diff(few) > 0)
    many = np.zeros(100, bool)
    many[40:80] = True
    subset = sample_subset(100, 10, video_rng(0, "v"), many)
    assert many[subset].all()
    np.testing.assert_array_equal(subset, sample_subset(100, 10, video_rng(0, "v"), many))
    # Without a preference the draw is TATs' uniform one, as before.
    np.testing.assert_array_equal(
        sample_subset(100, 10, video_rng(0, "v"), None), sample_subset(100, 10, video_rng(0, "v"))
    )
    with pytest.raises(ValueError, match="preferred must be bool"):
        sample_subset(100, 10, video_rng(0, "v"), np.zeros(99, bool))


def test_candidates_limit_what_the_filter_keeps():
    from fsar.tracking.filtering import first_frame_admit

    tracks = np.zeros((3, 4, 2))
    tracks[:, 1] = 50.0  # far from point 0 -> kept unless not a candidate
    vis = np.ones((3, 4), bool)
    qf = np.array([0, 1, 1, 2])
    np.testing.assert_array_equal(filter_redundant(tracks, vis, qf, 16), [0, 1])
    candidates = np.array([True, False, True, True])
    np.testing.assert_array_equal(filter_redundant(tracks, vis, qf, 16, candidates=candidates), [0])
    # admit: points queried near a visible first-frame point are declined, others (and first-frame ones) admitted
    admit = first_frame_admit(qf, radius=2.0)
    positions = np.array([[10.0, 10.0], [11.0, 10.5], [30.0, 10.0], [0.0, 0.0]])
    np.testing.assert_array_equal(admit(1, np.array([1, 2]), positions, np.array([True] * 4)), [False, True])
    np.testing.assert_array_equal(admit(1, np.array([1, 2]), positions, np.array([False] * 4)), [True, True])
    np.testing.assert_array_equal(admit(0, np.array([0]), positions, np.zeros(4, bool)), [True])
