import numpy as np
import pytest

from fsar.tracking.filtering import filter_redundant, mask_before_query
from fsar.tracking.runner import (
    ERRORS_FILE,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    TrackingSettings,
    find_videos,
    folder_jobs,
    is_complete,
    record_jobs,
    run_tracking,
    track_frames,
    tracker_timeline,
    write_error_report,
)
from fsar.tracking.trackfile import TrackFile

from .video_fixtures import moving_square, square_mask, translating_texture, write_video

SETTINGS = TrackingSettings(grid_size=4, points=8, max_fps=10)


@pytest.fixture
def video_tree(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "walk" / "a.mp4", translating_texture(10, 48, 64, (1.0, 0.5), seed=1), fps=10)
    write_video(root / "walk" / "b.mp4", translating_texture(12, 48, 64, (-1.0, 0.0), seed=2), fps=20)
    frames_dir = root / "run" / "c"
    frames_dir.mkdir(parents=True)
    import cv2

    for i, frame in enumerate(translating_texture(6, 48, 64, (0.5, 0.5), seed=3)):
        cv2.imwrite(str(frames_dir / f"{i:05d}.png"), frame[..., ::-1])
    (root / "run" / "broken.mp4").write_bytes(b"this is not a video")
    (root / "notes.txt").write_text("ignored")
    return root


def test_find_videos_and_mirrored_outputs(video_tree, tmp_path):
    found = [p.relative_to(video_tree).as_posix() for p in find_videos(video_tree)]
    assert found == ["run/broken.mp4", "run/c", "walk/a.mp4", "walk/b.mp4"]
    jobs = folder_jobs(video_tree, tmp_path / "out")
    assert [(j.output.relative_to(tmp_path / "out").as_posix(), j.video_id) for j in jobs] == [
        ("run/broken.npz", "run/broken"),
        ("run/c.npz", "run/c"),
        ("walk/a.npz", "walk/a"),
        ("walk/b.npz", "walk/b"),
    ]
    (video_tree / "walk" / "a.webm").write_bytes(b"x")
    with pytest.raises(ValueError, match="would both be tracked into"):
        folder_jobs(video_tree, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_videos(tmp_path / "nope")


def test_discovery_suffixes_match_the_video_reader():
    from fsar.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    assert set(VIDEO_EXTENSIONS) == VIDEO_SUFFIXES and set(IMAGE_EXTENSIONS) == IMAGE_SUFFIXES


def test_record_jobs_deduplicate_and_mirror_the_root(video_tree, tmp_path):
    class Record:
        def __init__(self, path, video_id):
            self.path, self.video_id, self.class_name = path, video_id, "walk"

    records = [Record(video_tree / "walk" / "a.mp4", "a"), Record(video_tree / "walk" / "a.mp4", "a")]
    records.append(Record(tmp_path / "elsewhere" / "z.mp4", "z"))
    jobs = record_jobs(records, video_tree, tmp_path / "out")
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["walk/a.npz", "z.npz"]
    assert [j.video_id for j in jobs] == ["a", "z"]


def test_timeline_resamples_like_tats():
    np.testing.assert_array_equal(tracker_timeline(90, 30.0, 10, ".mp4"), np.linspace(0, 89, 30).astype(int))
    np.testing.assert_array_equal(tracker_timeline(90, 30.0, 10, ".webm"), np.arange(90))  # SSv2: every frame
    np.testing.assert_array_equal(tracker_timeline(20, 8.0, 10, ".mp4"), np.arange(20))  # already slow
    np.testing.assert_array_equal(tracker_timeline(20, None, 10, ""), np.arange(20))  # unknown fps
    np.testing.assert_array_equal(tracker_timeline(90, 30.0, 0, ".mp4"), np.arange(90))  # disabled
    assert len(tracker_timeline(12, 20.0, 10, ".mp4")) == 6


def test_track_frames_applies_the_whole_recipe():
    frames = translating_texture(9, 48, 64, (1.0, 0.0), seed=4)
    settings = TrackingSettings(grid_size=4, points=10, seed=3)
    track_file = track_frames(frames, settings.create_tracker(), settings, video_id="x", fps=25.0)
    assert track_file.num_points_total == 7 * 16
    assert 16 <= track_file.num_points <= 7 * 16
    np.testing.assert_array_equal(track_file.query_frame[:16], 0)  # every frame-0 point is kept, first
    assert np.all(np.diff(track_file.query_frame) >= 0)
    assert track_file.sampled_indices.shape == (10,)
    rows = np.arange(9)[:, None]
    assert not (track_file.visibility & (rows < track_file.query_frame[None])).any()
    assert track_file.params["grid_size"] == 4 and track_file.params["tracker"]["win_size"] == 11
    again = track_frames(frames, settings.create_tracker(), settings, video_id="x", fps=25.0)
    np.testing.assert_array_equal(again.sampled_indices, track_file.sampled_indices)


GRID_PARAM_KEYS = {"tracker", "grid_size", "grid", "query", "points", "seed", "filter", "max_dist", "max_fps"}
SQUARE = dict(num_frames=10, height=48, width=64, size=8, start=(4, 18), step=(4, 0))


def _on_square_at_query(track_file, mask):
    ids = track_file.sampled_indices
    rows = track_file.query_frame[ids]
    xy = np.rint(track_file.tracks[rows, ids]).astype(int)
    return mask[rows, xy[:, 1], xy[:, 0]]


def test_motion_query_points_put_the_subset_on_the_mover():
    frames, mask = moving_square(**SQUARE, seed=1), square_mask(**SQUARE)
    # 36 points per query frame: about 16 fit on the 8x8 square at spacing 2, the rest are grid top-ups.
    grid = TrackingSettings(grid_size=6, points=8, seed=0)
    motion = TrackingSettings(grid_size=6, points=8, seed=0, query_points="motion")
    uniform = TrackingSettings(grid_size=6, points=8, seed=0, query_points="motion", prefer_picked=False)
    files = {
        name: track_frames(frames, s.create_tracker(), s, video_id="sq")
        for name, s in (("grid", grid), ("motion", motion), ("uniform", uniform))
    }
    assert _on_square_at_query(files["motion"], mask).all()
    assert _on_square_at_query(files["grid"], mask).mean() <= 0.25
    # TATs' uniform subset over the same points also draws grid top-ups.
    assert _on_square_at_query(files["uniform"], mask).mean() < 0.75
    # Grid files keep the parameters they always had, plus the filter shortcut's radius; motion files record
    # the rule.
    assert set(files["grid"].params) == GRID_PARAM_KEYS | {"skip_radius"}
    assert files["grid"].params["skip_radius"] == 2.0
    params = files["motion"].params
    assert params["query_points"] == "motion" and params["prefer_picked"] is True
    assert params["motion"] == {
        "reference": "median",
        "gap": 1,
        "sigma": 1.0,
        "erode": 1,
        "spacing": 2.0,
        "threshold": 20.0,
    }
    again = track_frames(frames, motion.create_tracker(), motion, video_id="sq")
    np.testing.assert_array_equal(again.tracks, files["motion"].tracks)
    np.testing.assert_array_equal(again.sampled_indices, files["motion"].sampled_indices)


def test_settings_reject_unknown_query_points():
    with pytest.raises(ValueError, match="unknown query points 'blobs'"):
        TrackingSettings(query_points="blobs")
    with pytest.raises(TypeError, match="motion must be a MotionRule"):
        TrackingSettings(query_points="motion", motion={"spacing": 3})


def test_run_tracks_skips_complete_and_reports_failures(video_tree, tmp_path):
    out = tmp_path / "out"
    jobs = folder_jobs(video_tree, out)
    report = run_tracking(jobs, SETTINGS, progress=False)
    assert len(report.done) == 3 and not report.skipped
    assert [source.name for source, _ in report.failed] == ["broken.mp4"]
    assert "broken.mp4" in report.failed[0][0].as_posix()
    errors = write_error_report(report, out)
    assert errors == out / ERRORS_FILE and "broken.mp4: " in errors.read_text()

    b = TrackFile.load(out / "walk" / "b.npz")  # 12 frames at 20 fps -> 6 frames at <= 10 fps
    np.testing.assert_array_equal(b.timeline, np.linspace(0, 11, 6).astype(int))
    assert b.fps == 20.0 and b.frame_size == (48, 64) and b.video_id == "walk/b"
    c = TrackFile.load(out / "run" / "c.npz")  # frame folder, fps unknown: every frame
    np.testing.assert_array_equal(c.timeline, np.arange(6))
    assert np.isnan(c.fps)

    again = run_tracking(jobs, SETTINGS, progress=False)
    assert len(again.skipped) == 3 and not again.done and len(again.failed) == 1
    changed = TrackingSettings(grid_size=4, points=8, max_fps=10, seed=1)
    assert not is_complete(
        out / "walk" / "a.npz", "lk", changed.file_params(changed.create_tracker().params())
    )
    assert is_complete(out / "walk" / "a.npz", "lk", SETTINGS.file_params(SETTINGS.create_tracker().params()))
    assert not is_complete(
        out / "walk" / "a.npz", "lk", SETTINGS.file_params(SETTINGS.create_tracker().params()), "other id"
    )
    redone = run_tracking(jobs[2:3], changed, progress=False)
    assert len(redone.done) == 1

    (video_tree / "run" / "broken.mp4").unlink()
    clean = run_tracking(folder_jobs(video_tree, out), SETTINGS, progress=False)
    assert clean.ok and write_error_report(clean, out) is None and not (out / ERRORS_FILE).exists()


def test_a_corrupt_output_is_redone(video_tree, tmp_path):
    out = tmp_path / "out"
    jobs = [j for j in folder_jobs(video_tree, out) if j.video_id == "walk/a"]
    jobs[0].output.parent.mkdir(parents=True)
    jobs[0].output.write_bytes(b"partial")
    report = run_tracking(jobs, SETTINGS, progress=False)
    assert len(report.done) == 1
    TrackFile.load(jobs[0].output)


def test_parallel_workers_give_identical_files(video_tree, tmp_path):
    jobs_1 = [j for j in folder_jobs(video_tree, tmp_path / "one") if "broken" not in j.video_id]
    jobs_2 = [j for j in folder_jobs(video_tree, tmp_path / "two") if "broken" not in j.video_id]
    run_tracking(jobs_1, SETTINGS, progress=False)
    report = run_tracking(jobs_2, SETTINGS, workers=2, progress=False)
    assert len(report.done) == 3 and report.ok
    for a, b in zip(jobs_1, jobs_2):
        first, second = TrackFile.load(a.output), TrackFile.load(b.output)
        np.testing.assert_array_equal(first.tracks, second.tracks)
        np.testing.assert_array_equal(first.sampled_indices, second.sampled_indices)


def test_single_frame_video_and_too_small_grid():
    frames = translating_texture(1, 32, 32, (0.0, 0.0), seed=5)
    settings = TrackingSettings(grid_size=4, points=16)
    track_file = track_frames(frames, settings.create_tracker(), settings, video_id="one")
    assert track_file.tracks.shape == (1, 16, 2) and track_file.visibility.all()
    np.testing.assert_array_equal(track_file.sampled_indices, np.arange(16))
    small = TrackingSettings(grid_size=2, points=8)
    with pytest.raises(ValueError, match="only 4 points remain after filtering but 8 were requested"):
        track_frames(frames, small.create_tracker(), small, video_id="one")


def _plain_recipe(frames, settings):
    """Today's order of work (every point tracked both ways, then the filter): what the split path must equal."""
    queries = settings.make_queries(frames, "v")
    tracks, vis = settings.create_tracker().track(frames, queries)
    vis = mask_before_query(vis, queries.query_frame)
    keep = filter_redundant(tracks, vis, queries.query_frame, settings.max_dist)
    return tracks[:, keep], vis[:, keep], len(queries)


@pytest.mark.parametrize(
    "frames",
    [
        moving_square(**SQUARE),
        translating_texture(12, 48, 64, (1.5, -0.5), seed=7),
    ],
    ids=["moving square", "translating texture"],
)
def test_split_tracking_gives_the_plain_recipes_files(frames):
    settings = TrackingSettings(grid_size=8, points=16, max_dist=4.0, skip_radius=0.0)
    tracks, vis, total = _plain_recipe(frames, settings)
    track_file = track_frames(frames, settings.create_tracker(), settings, video_id="v")
    assert track_file.num_points_total == total and tracks.shape[1] > 64  # later query frames kept points too
    np.testing.assert_array_equal(track_file.tracks, tracks)  # backward rows of the kept points included
    np.testing.assert_array_equal(track_file.visibility, vis)
    assert "skip_radius" not in track_file.params


def test_skip_radius_tracks_fewer_points_and_keeps_only_tracked_ones():
    frames = moving_square(**SQUARE)
    exact = TrackingSettings(grid_size=8, points=16, max_dist=4.0, skip_radius=0.0)
    fast = TrackingSettings(grid_size=8, points=16, max_dist=4.0, skip_radius=1.0)
    calls = []
    tracker = fast.create_tracker()
    real_step = tracker._step

    def counting_step(src, dst, points):
        calls.append(len(points))
        return real_step(src, dst, points)

    tracker._step = counting_step
    fast_file = track_frames(frames, tracker, fast, video_id="v")
    skipped_work = sum(calls)
    calls.clear()
    exact_tracker = exact.create_tracker()
    exact_tracker._step = counting_step
    exact_file = track_frames(frames, exact_tracker, exact, video_id="v")
    assert skipped_work < 0.7 * sum(calls)
    assert fast_file.params["skip_radius"] == 1.0
    # every point the shortcut keeps is kept by the exact recipe, with the same track
    exact_rows = {
        (int(q), *np.round(t, 4).tolist()): i
        for i, (q, t) in enumerate(
            zip(exact_file.query_frame, exact_file.tracks.transpose(1, 0, 2).reshape(-1, 2 * 10))
        )
    }
    for q, t in zip(fast_file.query_frame, fast_file.tracks.transpose(1, 0, 2).reshape(-1, 2 * 10)):
        assert (int(q), *np.round(t, 4).tolist()) in exact_rows
    with pytest.raises(ValueError, match="skip_radius"):
        TrackingSettings(max_dist=4.0, skip_radius=4.0)
