import cv2
import numpy as np
import pytest

from fsar.tracking.queries import (
    MotionRule,
    Queries,
    build_motion_queries,
    build_queries,
    grid_points,
    motion_map,
    pick_peaks,
    query_frames,
    top_up_from_grid,
)

from .video_fixtures import moving_square, square_mask


def test_uniform_8_query_frames_match_tats():
    np.testing.assert_array_equal(query_frames(45, "uniform_8"), [0, 6, 12, 18, 25, 31, 37])
    np.testing.assert_array_equal(query_frames(8, "uniform_8"), [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(query_frames(100, "uniform_4"), [0, 33, 66])


def test_short_videos_merge_repeated_query_frames():
    # linspace(0, 3, 8) -> 0,0,0,1,1,2,2 (the last value 3 is dropped)
    np.testing.assert_array_equal(query_frames(4, "uniform_8"), [0, 1, 2])
    np.testing.assert_array_equal(query_frames(1, "uniform_8"), [0])


def test_other_query_types_and_errors():
    np.testing.assert_array_equal(query_frames(10, "beginning"), [0])
    np.testing.assert_array_equal(query_frames(10, "middle"), [0, 5])
    with pytest.raises(ValueError, match="unknown query type 'interval'"):
        query_frames(10, "interval")
    with pytest.raises(ValueError, match="K >= 2"):
        query_frames(10, "uniform_1")
    with pytest.raises(ValueError, match="0 frames"):
        query_frames(0)


def test_cotracker_grid_in_working_resolution_is_exact():
    points = grid_points((384, 512), 16, "cotracker")
    assert points.shape == (256, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points[:16, 0], np.linspace(8, 504, 16), atol=1e-4)
    np.testing.assert_allclose(points[::16, 1], np.linspace(8, 376, 16), atol=1e-4)
    # Row-major: y is constant along the first 16 points (x inner).
    assert np.all(points[:16, 1] == points[0, 1])
    np.testing.assert_allclose(points[1], [8 + 496 / 15, 8], atol=1e-4)


def test_cotracker_grid_is_rescaled_like_cotracker_outputs():
    points = grid_points((240, 320), 16, "cotracker")
    np.testing.assert_allclose(points[0], [8 * 319 / 511, 8 * 239 / 383], rtol=1e-6)
    np.testing.assert_allclose(points[-1], [504 * 319 / 511, 376 * 239 / 383], rtol=1e-6)
    assert points[:, 0].max() < 319 and points[:, 1].max() < 239


def test_pixel_grid_uses_cell_centres():
    points = grid_points((4, 8), 2, "pixel")
    np.testing.assert_allclose(points, [[1.5, 0.5], [5.5, 0.5], [1.5, 2.5], [5.5, 2.5]])
    with pytest.raises(ValueError, match="unknown grid style"):
        grid_points((4, 8), 2, "hex")


def test_build_queries_repeats_the_grid_on_each_query_frame():
    queries = build_queries(45, (240, 320), grid_size=16, query="uniform_8")
    assert isinstance(queries, Queries) and len(queries) == 7 * 256
    assert queries.query_frame.dtype == np.int32 and queries.xy.dtype == np.float32
    np.testing.assert_array_equal(np.unique(queries.query_frame), [0, 6, 12, 18, 25, 31, 37])
    np.testing.assert_array_equal(queries.query_frame[255:257], [0, 6])
    np.testing.assert_array_equal(queries.xy[:256], queries.xy[256:512])


# ---------------------------------------------------------------------------------------------- motion rule
SQUARE = dict(num_frames=10, height=48, width=64, size=12, start=(4, 18), step=(4, 0))


def _inside(mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
    col, row = np.rint(xy[:, 0]).astype(int), np.rint(xy[:, 1]).astype(int)
    return mask[row, col]


def test_motion_points_land_on_the_moving_square():
    frames = moving_square(**SQUARE, seed=1)
    mask = square_mask(**SQUARE)
    queries = build_motion_queries(frames, grid_size=4, rule=MotionRule(), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(queries.query_frame, np.repeat([0, 1, 2, 3, 5, 6, 7], 16))
    assert queries.picked.all()  # 16 points fit on the 12x12 square at spacing 2
    for q in np.unique(queries.query_frame):
        xy = queries.xy[queries.query_frame == q]
        assert _inside(mask[q], xy).all(), f"query frame {q}: points off the square"
    # The TATs grid on the same video: most points are on the background.
    grid = build_queries(10, (48, 64), grid_size=4)
    on_square = np.mean([_inside(mask[q], grid.xy[grid.query_frame == q]).mean() for q in range(8) if q != 4])
    assert on_square < 0.2


def test_frame_differencing_picks_the_largest_change_first():
    frames = moving_square(**SQUARE, seed=2)
    rule = MotionRule(reference="neighbours", erode=0, spacing=3.0, threshold=30.0)
    score = motion_map(frames, 3, rule)
    picks = pick_peaks(score, 16, rule.spacing, rule.threshold)
    assert len(picks) == 16
    values = score[picks[:, 1].astype(int), picks[:, 0].astype(int)]
    assert values[0] == score.max() and np.all(np.diff(values) <= 0) and values.min() >= 30.0
    # The change lies on the squares of rows 2, 3 and 4 (leading and trailing edges), within the blur.
    union = square_mask(**SQUARE)[2:5].any(axis=0).astype(np.uint8)
    assert _inside(cv2.dilate(union, np.ones((5, 5), np.uint8)) > 0, picks).all()
    assert not _inside(square_mask(**SQUARE)[3], picks).all()  # some are on the background just uncovered


def test_pick_peaks_exact_order_spacing_and_threshold():
    score = np.zeros((5, 7), np.float32)
    score[2, 3], score[2, 4], score[0, 0], score[4, 6] = 9, 8, 5, 5
    np.testing.assert_array_equal(pick_peaks(score, 10, 2.0, 1.0), [[3, 2], [0, 0], [6, 4]])
    np.testing.assert_array_equal(pick_peaks(score, 10, 1.0, 1.0), [[3, 2], [4, 2], [0, 0], [6, 4]])
    np.testing.assert_array_equal(pick_peaks(score, 10, 2.0, 6.0), [[3, 2]])
    np.testing.assert_array_equal(pick_peaks(score, 1, 0.0, 1.0), [[3, 2]])
    assert pick_peaks(score, 10, 2.0, 10.0).shape == (0, 2)


@pytest.mark.parametrize("spacing", [2.0, 3.5, 5.0])
def test_pick_peaks_respects_the_spacing(spacing):
    score = np.random.default_rng(3).random((30, 40)).astype(np.float32) + 1
    picks = pick_peaks(score, 500, spacing, 1.0)
    dist = np.sqrt(((picks[:, None] - picks[None]) ** 2).sum(-1)) + np.eye(len(picks)) * 1e9
    assert dist.min() >= spacing
    # Greedy NMS leaves no gap: every pixel is within `spacing` of a pick.
    ys, xs = np.mgrid[0:30, 0:40]
    pixels = np.stack([xs.ravel(), ys.ravel()], 1)
    assert np.sqrt(((pixels[:, None] - picks[None]) ** 2).sum(-1)).min(axis=1).max() < spacing


def test_static_video_is_topped_up_from_the_grid_with_a_seeded_order():
    frames = moving_square(**{**SQUARE, "step": (0, 0)}, seed=4)  # nothing moves
    a = build_motion_queries(frames, grid_size=4, rng=np.random.default_rng(7))
    b = build_motion_queries(frames, grid_size=4, rng=np.random.default_rng(7))
    c = build_motion_queries(frames, grid_size=4, rng=np.random.default_rng(8))
    assert not a.picked.any() and len(a) == 7 * 16
    grid = {tuple(p) for p in grid_points((48, 64), 4).tolist()}
    for q in np.unique(a.query_frame):
        assert {tuple(p) for p in a.xy[a.query_frame == q].tolist()} == grid
    np.testing.assert_array_equal(a.xy, b.xy)
    assert not np.array_equal(a.xy, c.xy)


def test_top_up_takes_grid_points_away_from_the_picks_first():
    grid = grid_points((30, 30), 3, "pixel")  # centres 4.5, 14.5, 24.5
    picked = np.array([[14.5, 14.5]], np.float32)
    corners = {(4.5, 4.5), (24.5, 4.5), (4.5, 24.5), (24.5, 24.5)}
    out = top_up_from_grid(picked, grid, 5, 10.5, np.random.default_rng(0))
    np.testing.assert_array_equal(out[0], picked[0])
    assert {tuple(p) for p in out[1:].tolist()} == corners
    assert len(top_up_from_grid(picked, grid, 50, 10.5, np.random.default_rng(0))) == 10  # all there is
    np.testing.assert_array_equal(top_up_from_grid(grid, grid, 4, 1.0, np.random.default_rng(0)), grid[:4])


def test_motion_picks_do_not_depend_on_the_seed_on_a_moving_video():
    frames = moving_square(**SQUARE, seed=5)
    a = build_motion_queries(frames, grid_size=6, rng=np.random.default_rng(0))
    b = build_motion_queries(frames, grid_size=6, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a.picked, b.picked)
    assert 0 < a.picked.mean() < 1  # 36 points per frame do not all fit on the square: some top-ups
    np.testing.assert_array_equal(a.xy[a.picked], b.xy[b.picked])
    assert not np.array_equal(a.xy[~a.picked], b.xy[~b.picked])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(reference="mean"), "unknown reference 'mean'"),
        (dict(gap=0), "gap must be an integer >= 1"),
        (dict(erode=-1), "erode must be an integer >= 0"),
        (dict(erode=1.5), "erode must be an integer >= 0"),
        (dict(spacing=-1.0), "spacing must be a finite number >= 0"),
        (dict(sigma=float("nan")), "sigma must be a finite number >= 0"),
        (dict(threshold=0.0), "threshold must be > 0"),
    ],
)
def test_bad_motion_rules_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MotionRule(**kwargs)


def test_bad_motion_inputs_are_rejected():
    frames = moving_square(**SQUARE)
    with pytest.raises(ValueError, match="uint8"):
        build_motion_queries(frames.astype(np.float32), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs rng"):
        build_motion_queries(frames)
    with pytest.raises(ValueError, match="outside the video's 10 frames"):
        motion_map(frames, 10)
    with pytest.raises(ValueError, match="count must be >= 0"):
        pick_peaks(np.zeros((4, 4)), -1, 1.0, 1.0)
    with pytest.raises(ValueError, match="picked must be bool"):
        Queries(np.zeros(2, np.int32), np.zeros((2, 2), np.float32), picked=np.zeros(3, bool))
