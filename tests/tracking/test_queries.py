import numpy as np
import pytest

from fsar.tracking.queries import Queries, build_queries, grid_points, query_frames


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
