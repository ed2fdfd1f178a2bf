"""Tests of the synthetic benchmark (fsar.data.synthetic): classes, rendering, trajectories, files on disk."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from fsar.data.synthetic import (
    PRIMITIVE_NAMES,
    SPLIT_FILES,
    ClassDef,
    SynthConfig,
    build_classes,
    generate_synthetic,
    render_clip,
    render_video,
    scaled_split_counts,
)
from fsar.data.synthetic import generate as generate_module
from fsar.data.synthetic.primitives import LOG_SCALE, ROTATION, TRANSLATION, compose_offsets
from fsar.data.synthetic.render import point_visibility
from fsar.data.synthetic.shapes import SHAPES, inside_shape
from fsar.errors import OutputDirError

# A small variant of the tiny preset for the on-disk tests: 15 classes (5/5/5), 2 videos each, 8 frames of 32x32.
SMALL = SynthConfig.preset("tiny", videos_per_class=2, num_frames=8, height=32, width=32, num_points=16)
# Clean scenes for motion tests: no distractors, no camera jitter, no noise.
CLEAN = dataclasses.replace(
    SynthConfig.preset("tiny"), max_distractors=0, camera_jitter=0, noise_std_range=(0.0, 0.0), num_points=48
)


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def one_class(*primitives: str, index: int = 0) -> ClassDef:
    return ClassDef(
        index=index, name=f"c{index:03d}_" + "_then_".join(primitives), primitives=primitives, split="test"
    )


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> tuple[Path, SynthConfig, object, float]:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    config = SynthConfig.preset("tiny")
    t0 = time.perf_counter()
    summary = generate_synthetic(out, config, workers=1, progress=False)
    return out, config, summary, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------- config and classes
def test_presets_and_split_counts():
    d, t = SynthConfig.preset("default"), SynthConfig.preset("tiny")
    assert (d.num_classes, d.split_counts, d.videos_per_class, d.num_frames, d.frame_size) == (
        100,
        (64, 12, 24),
        30,
        32,
        (64, 64),
    )
    assert d.bright_actor and d.camera_jitter == 0 and d.max_distractors == 1
    c = SynthConfig.preset("cluttered")
    assert (c.videos_per_class, c.frame_size, c.camera_jitter, c.bright_actor) == (20, (112, 112), 2, False)
    assert (t.num_classes, t.split_counts, t.videos_per_class, t.num_frames, t.frame_size) == (
        15,
        (5, 5, 5),
        6,
        16,
        (64, 64),
    )
    assert scaled_split_counts(100, (64, 12, 24)) == (64, 12, 24)
    assert scaled_split_counts(50, (64, 12, 24)) == (32, 6, 12)
    assert scaled_split_counts(31, (5, 5, 5)) == (11, 10, 10)
    assert d.with_num_classes(40).split_counts == (26, 5, 9)
    assert SynthConfig.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    with pytest.raises(ValueError, match="unknown synthetic preset 'huge'"):
        SynthConfig.preset("huge")


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"split_counts": (60, 12, 24)}, "split_counts"),
        ({"height": 63}, "height"),
        ({"codec": "vp9"}, "codec"),
        ({"primitives": ("left", "jump")}, "primitives"),
        ({"num_frames": 5}, "num_frames"),
        ({"action_duration_range": (0.5, 1.5)}, "action_duration_range"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(changes, key):
    with pytest.raises(ValueError, match=f"SynthConfig.{key}"):
        dataclasses.replace(SynthConfig(), **changes)


@pytest.mark.parametrize(
    "config",
    [SynthConfig.preset("default"), SynthConfig.preset("cluttered"), SynthConfig.preset("tiny")],
    ids=["default", "cluttered", "tiny"],
)
def test_classes_twins_and_splits(config):
    classes = build_classes(config)
    assert [c.index for c in classes] == list(range(config.num_classes))
    by_name = {c.name: c for c in classes}
    assert len(by_name) == config.num_classes
    seqs = [c.primitives for c in classes]
    assert len(set(seqs)) == len(seqs)  # all different
    for c in classes:
        assert re.fullmatch(r"c\d{3}_[a-z]+(_then_[a-z]+)*", c.name), c.name
        assert c.name == f"c{c.index:03d}_" + "_then_".join(c.primitives)
        assert config.min_primitives <= len(c.primitives) <= config.max_primitives
        assert len(set(c.primitives)) == len(c.primitives)
        assert set(c.primitives) <= set(PRIMITIVE_NAMES)
        if c.twin is not None:
            twin = by_name[c.twin]
            assert twin.primitives == c.primitives[::-1] and twin.primitives != c.primitives
            assert sorted(twin.primitives) == sorted(c.primitives)
            assert twin.split == c.split and twin.twin == c.name
        else:  # no reversed sequence anywhere (so no twin straddles two splits)
            assert c.primitives[::-1] == c.primitives or c.primitives[::-1] not in seqs
    counts = {s: sum(c.split == s for c in classes) for s in ("train", "val", "test")}
    assert tuple(counts.values()) == config.split_counts
    for split in ("train", "val", "test"):
        in_split = [c for c in classes if c.split == split]
        twins = sum(c.twin is not None for c in in_split)
        assert twins >= 2 and twins / len(in_split) >= 0.3, (split, twins)
    # Every primitive is used by some class of the 100-class sets.
    if config.num_classes == 100:
        assert set().union(*map(set, seqs)) == set(config.primitives)


def test_classes_are_a_function_of_the_seed():
    a, b = build_classes(SynthConfig(seed=1)), build_classes(SynthConfig(seed=1))
    assert a == b
    assert [c.primitives for c in build_classes(SynthConfig(seed=2))] != [c.primitives for c in a]


# ----------------------------------------------------------------------------------------------- primitives
def test_primitive_offsets():
    u = np.array([0.0, 1.0])
    for name in PRIMITIVE_NAMES:
        off = compose_offsets([name], u)
        assert np.allclose(off[0], 0.0), name  # no offset before the primitive starts
    end = {name: compose_offsets([name], [1.0])[0] for name in PRIMITIVE_NAMES}
    assert np.allclose(end["right"], [TRANSLATION, 0, 0, 0]) and np.allclose(
        end["up"], [0, -TRANSLATION, 0, 0]
    )
    assert np.allclose(end["rotcw"], [0, 0, ROTATION, 0]) and np.allclose(
        end["shrink"], [0, 0, 0, -LOG_SCALE]
    )
    assert np.allclose(end["circle"], 0.0, atol=1e-12) and np.allclose(end["shake"], 0.0, atol=1e-12)
    mid = compose_offsets(["circle"], [0.5])[0]
    assert mid[1] < -0.2  # the circle leaves the start point (upwards) before returning
    # Sequential composition: the second primitive starts when the first ends; strengths scale each one.
    seq = compose_offsets(["right", "up"], [0.0, 0.5, 1.0], strengths=[1.0, 2.0])
    assert np.allclose(seq[1], [TRANSLATION, 0, 0, 0]) and np.allclose(
        seq[2], [TRANSLATION, -2 * TRANSLATION, 0, 0]
    )
    with pytest.raises(KeyError, match="jump"):
        compose_offsets(["jump"], [0.5])


def test_shapes_contain_marker_point_and_fit_unit_disc():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1.2, 1.2, size=(20000, 2))
    outside_disc = np.hypot(pts[:, 0], pts[:, 1]) > 1.0 + 1e-9
    for shape in SHAPES:
        inside = inside_shape(shape, pts[:, 0], pts[:, 1])
        assert not np.any(inside & outside_disc), shape
        assert 0.2 < inside.mean() < 0.6, shape  # a substantial area
        assert inside_shape(shape, np.array([0.45]), np.array([0.0]))[0], shape


# ------------------------------------------------------------------------------------------------ rendering
def test_render_video_shapes_and_determinism():
    config = SynthConfig.preset("tiny")
    cls = build_classes(config)[3]
    frames, points, visible = render_video(config, cls, 2)
    assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.uint8
    assert points.shape == (16, 32, 2) and points.dtype == np.float32
    assert visible.shape == (16, 32) and visible.dtype == bool
    again = render_video(config, cls, 2)
    for x, y in zip((frames, points, visible), again):
        assert np.array_equal(x, y)
    other = render_video(config, cls, 3)[0]
    assert np.abs(other.astype(int) - frames).mean() > 10  # another video looks different
    reseeded = render_video(dataclasses.replace(config, seed=5), cls, 2)[0]
    assert np.abs(reseeded.astype(int) - frames).mean() > 10


def _net_rotation(points: np.ndarray, a: int, b: int) -> float:
    """Mean signed angle (radians, clockwise on screen positive) turning frame a's point cloud into frame b's."""
    pa, pb = points[a] - points[a].mean(0), points[b] - points[b].mean(0)
    cross = pa[:, 0] * pb[:, 1] - pa[:, 1] * pb[:, 0]
    dot = (pa * pb).sum(1)
    return float(np.arctan2(cross.sum(), dot.sum()))


@pytest.mark.parametrize("video_idx", [0, 1, 2])
def test_actor_follows_its_primitives(video_idx):
    T, size = CLEAN.num_frames, 64
    lo, hi = CLEAN.primitive_strength_range
    clip = render_clip(CLEAN, one_class("right", "up", "rotcw", "grow"), video_idx)
    pts = clip.points.astype(np.float64)
    start, end = clip.scene.action_window
    first, last = int(np.floor(start)), int(np.ceil(end))
    # Constant before and after the action window (no jitter here).
    assert np.allclose(pts[: first + 1], pts[0]) and np.allclose(pts[min(last, T - 1) :], pts[-1])
    centre = pts.mean(axis=1)
    quarter = [0.0, 0.25, 0.5, 0.75, 1.0]
    # Frames nearest the end of each primitive: progress is monotone, so find them from the scene's progress.
    at = [int(np.argmin(np.abs(clip.scene.progress - q))) for q in quarter]
    dx = np.diff(centre[at, 0])
    dy = np.diff(centre[at, 1])
    assert lo * TRANSLATION * size * 0.8 <= dx[0] <= hi * TRANSLATION * size * 1.2  # "right" moves right
    assert abs(dy[0]) < 2
    assert -hi * TRANSLATION * size * 1.2 <= dy[1] <= -lo * TRANSLATION * size * 0.8  # "up": y decreases
    assert np.all(np.diff(centre[: at[1] + 1, 0]) >= -1e-6)  # x never decreases while moving right
    rot = _net_rotation(pts, at[2], at[3])
    assert 0.7 * lo * ROTATION <= rot <= 1.1 * hi * ROTATION  # clockwise on screen
    spread = [np.linalg.norm(pts[i] - pts[i].mean(0), axis=1).mean() for i in (at[3], at[4])]
    assert np.exp(0.7 * lo * LOG_SCALE) <= spread[1] / spread[0] <= np.exp(1.1 * hi * LOG_SCALE)  # grows


def test_reversed_twin_has_reversed_motion():
    """Left-then-up vs up-then-left: the same displacement, in the opposite order."""
    a = render_clip(CLEAN, one_class("left", "up"), 0)
    b = render_clip(CLEAN, one_class("up", "left", index=1), 0)
    for clip, first_axis in ((a, 0), (b, 1)):
        c = clip.points.mean(axis=1)
        half = int(np.argmin(np.abs(clip.scene.progress - 0.5)))
        move_first = np.abs(c[half] - c[0])
        assert move_first[first_axis] > 10 and move_first[1 - first_axis] < 2


def test_points_lie_on_the_drawn_actor_and_timing_is_random():
    windows = set()
    for video_idx in range(4):
        clip = render_clip(CLEAN, one_class("shrink", "circle"), video_idx)
        T, P, _ = clip.points.shape
        assert clip.visible.all()  # clean scene, actor kept in frame
        xi = np.rint(clip.points[..., 0]).astype(int)
        yi = np.rint(clip.points[..., 1]).astype(int)
        on_actor = clip.actor_mask[np.arange(T)[:, None], yi, xi]
        assert on_actor.mean() > 0.97
        start, end = clip.scene.action_window
        assert 0 <= start <= CLEAN.action_start_max * (T - 1) + 1e-9
        assert 0.5 * (T - 1) - 1e-9 <= end - start <= 0.9 * (T - 1) + 1e-9 and end <= T - 1 + 1e-9
        windows.add(round(start, 3))
        assert np.all(np.diff(clip.scene.progress) >= 0)
    assert len(windows) == 4  # duration misalignment: every video its own window


def test_visibility_false_outside_the_frame():
    big = dataclasses.replace(CLEAN, actor_radius_range=(0.45, 0.5))
    clip = render_clip(big, one_class("grow", "right"), 0)
    x, y = clip.points[..., 0], clip.points[..., 1]
    outside = (x < -0.5) | (x >= 63.5) | (y < -0.5) | (y >= 63.5)
    assert outside.sum() > 20  # the scene does push points out
    assert not clip.visible[outside].any()
    assert clip.visible[~outside].all()  # no distractors: everything inside is visible


def test_visibility_false_under_distractors():
    config = dataclasses.replace(
        SynthConfig.preset("tiny"),
        max_distractors=2,
        distractor_radius_range=(0.2, 0.25),
        noise_std_range=(0, 0),
    )
    cls = one_class("left", "down")
    occluded_seen = 0
    for video_idx in range(12):
        clip = render_clip(config, cls, video_idx)
        assert np.array_equal(clip.visible, point_visibility(clip.scene, clip.points.astype(np.float64)))
        x, y = clip.points[..., 0], clip.points[..., 1]
        in_frame = (x >= -0.5) & (x < 63.5) & (y >= -0.5) & (y < 63.5)
        hidden = in_frame & ~clip.visible
        if not hidden.any():
            continue
        occluded_seen += int(hidden.sum())
        t_idx, p_idx = np.nonzero(hidden)
        xi, yi = np.rint(x[hidden]).astype(int), np.rint(y[hidden]).astype(int)
        colours = np.stack([d.colour for d in clip.scene.distractors])
        pix = clip.frames[t_idx, yi, xi].astype(float)
        dist = np.abs(pix[:, None, :] - np.rint(colours)[None]).max(-1).min(-1)
        assert np.mean(dist <= 1) > 0.9  # the pixel there shows a distractor
        assert clip.actor_mask[t_idx, yi, xi].mean() < 0.1  # and not the actor
    assert occluded_seen > 0, "no occlusion in 12 videos with large distractors"


# ------------------------------------------------------------------------------------------------ on disk
def test_tiny_preset_runs_in_seconds_and_counts(tiny_dir):
    out, config, summary, seconds = tiny_dir
    assert seconds < 20, f"tiny preset took {seconds:.1f} s"
    assert summary.classes_per_split == {"train": 5, "val": 5, "test": 5}
    assert summary.videos_per_split == {"train": 30, "val": 30, "test": 30}
    assert (summary.num_videos, summary.generated, summary.reused) == (90, 90, 0)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "splits", "trajectories", "videos"]


def test_layout_and_split_files(tiny_dir):
    out, config, _, _ = tiny_dir
    classes = {c.name: c for c in build_classes(config)}
    seen: dict[str, set[str]] = {}
    for split, fname in SPLIT_FILES.items():
        raw = (out / "splits" / fname).read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw and not raw.endswith(b"\n\n")
        lines = raw.decode().splitlines()
        assert len(lines) == 5 * config.videos_per_class == len(set(lines))
        seen[split] = set()
        for line in lines:
            cname, vid = line.split("/")
            assert re.fullmatch(r"c\d{3}_v\d{3}", vid) and vid.startswith(cname[:4])
            assert classes[cname].split == split
            seen[split].add(cname)
            assert (out / "videos" / cname / f"{vid}.mp4").is_file()
            assert (out / "trajectories" / cname / f"{vid}.npz").is_file()
        assert len(seen[split]) == 5
    assert (
        not (seen["train"] & seen["val"])
        and not (seen["train"] & seen["test"])
        and not (seen["val"] & seen["test"])
    )
    assert len(list((out / "videos").glob("*/*.mp4"))) == 90  # nothing else written


def test_meta_json(tiny_dir):
    out, config, _, _ = tiny_dir
    meta = json.loads((out / "meta.json").read_text())
    classes = build_classes(config)
    assert meta["generator_version"] == generate_module.GENERATOR_VERSION
    assert meta["config"] == config.to_dict() and meta["config"]["seed"] == 0
    assert meta["classes"] == {c.name: list(c.primitives) for c in classes}
    assert meta["twins"] == {c.name: c.twin for c in classes if c.twin}
    assert meta["splits"] == {s: [c.name for c in classes if c.split == s] for s in ("train", "val", "test")}
    assert meta["counts"]["total_videos"] == 90 and meta["counts"]["videos"]["test"] == 30
    assert meta["frame_size"] == [64, 64] and meta["num_frames"] == 16
    assert meta["split_files"]["train"] == "splits/trainlist01.txt"


def test_trajectory_files_match_rendering(tiny_dir):
    out, config, _, _ = tiny_dir
    cls = build_classes(config)[7]
    with np.load(out / "trajectories" / cls.name / f"{cls.video_id(4)}.npz") as z:
        assert z["points"].shape == (16, 32, 2) and z["points"].dtype == np.float32
        assert z["visible"].shape == (16, 32) and z["visible"].dtype == bool
        assert z["frame_size"].tolist() == [64, 64]
        assert z["actor_pose"].shape == (16, 4) and z["action_window"].shape == (2,)
        _, points, visible = render_video(config, cls, 4)
        assert np.array_equal(z["points"], points) and np.array_equal(z["visible"], visible)


def test_decoded_video_matches_rendered_frames(tiny_dir):
    out, config, _, _ = tiny_dir
    cls = build_classes(config)[11]
    decoded = decode(out / "videos" / cls.name / f"{cls.video_id(1)}.mp4")
    frames = render_video(config, cls, 1)[0]
    assert decoded.shape == frames.shape
    err = np.abs(decoded.astype(int) - frames).mean()
    # Lossy: x264 at crf 18 plus 4:2:0 chroma on saturated edges (measured 3.5-7 on tiny clips).
    assert err < 8.0, err
    other = render_video(config, cls, 2)[0]
    assert np.abs(decoded.astype(int) - other).mean() > 4 * err  # measured 45-130 between different clips


def test_encoder_output_is_reproducible(tmp_path):
    """The same frames give the same bytes, whatever was encoded before. With x264's mbtree on, this very set-up
    (8 default-size clips, 3 rounds) gave a second encoding for 5 of the 8 clips, reproducibly."""
    from fsar.data.synthetic.encode import write_mp4

    config = SynthConfig.preset("cluttered")
    clips = [render_video(config, c, 0)[0] for c in build_classes(config)[:8]]
    seen: list[set[bytes]] = [set() for _ in clips]
    for _ in range(3):
        for i, frames in enumerate(clips):
            write_mp4(tmp_path / "v.mp4", frames, config.fps)
            seen[i].add((tmp_path / "v.mp4").read_bytes())
    assert [len(s) for s in seen] == [1] * len(clips)
    write_mp4(tmp_path / "m.mp4", clips[0], config.fps, codec="mpeg4")
    assert decode(tmp_path / "m.mp4").shape == clips[0].shape
    with pytest.raises(ValueError, match="even frame sizes"):
        write_mp4(tmp_path / "odd.mp4", clips[0][:, :63], config.fps)


def test_generation_is_deterministic_across_runs_and_workers(tmp_path):
    a = generate_synthetic(tmp_path / "a", SMALL, workers=1, progress=False)
    b = generate_synthetic(tmp_path / "b", SMALL, workers=2, progress=False)  # process pool
    assert a.num_videos == b.num_videos == 30
    for name in ["meta.json", *(f"splits/{f}" for f in SPLIT_FILES.values())]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    videos = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "videos").glob("*/*.mp4"))
    assert videos == sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / "videos").glob("*/*.mp4")
    )
    for rel in videos[::4]:
        assert np.array_equal(decode(tmp_path / "a" / rel), decode(tmp_path / "b" / rel)), rel
    # A different seed gives different split files.
    c = tmp_path / "c"
    generate_synthetic(c, dataclasses.replace(SMALL, seed=1, videos_per_class=1), workers=1, progress=False)
    assert (c / "splits/testlist01.txt").read_bytes() != (tmp_path / "a/splits/testlist01.txt").read_bytes()


def test_resume_regenerates_only_missing_videos(tmp_path):
    out = tmp_path / "s"
    generate_synthetic(out, SMALL, workers=1, progress=False)
    cls = build_classes(SMALL)[2]
    victim = out / "videos" / cls.name / f"{cls.video_id(1)}.mp4"
    before = decode(victim)
    victim.unlink()
    meta_before = (out / "meta.json").read_bytes()
    summary = generate_synthetic(out, SMALL, workers=1, progress=False)
    assert (summary.generated, summary.reused) == (1, 29)
    assert np.array_equal(decode(victim), before)
    assert (out / "meta.json").read_bytes() == meta_before
    again = generate_synthetic(out, SMALL, workers=1, progress=False)
    assert (again.generated, again.reused) == (0, 30)


def test_crash_leaves_no_video_claimed_complete_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "s"
    real_write = generate_module.write_mp4
    calls = {"n": 0}

    def failing_write(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            Path(path).write_bytes(b"half a video")  # a partial file, then the crash
            raise RuntimeError("simulated crash")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(generate_module, "write_mp4", failing_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_synthetic(out, SMALL, workers=1, progress=False)
    assert not (out / "meta.json").exists()
    assert not list(out.glob("splits/*.txt"))
    assert (out / generate_module.IN_PROGRESS_MARKER).is_file()
    videos = list((out / "videos").glob("*/*.mp4"))
    assert len(videos) == 6
    for v in videos:  # each finished video has its trajectory; the half-written one is not in videos/
        assert (out / "trajectories" / v.parent.name / f"{v.stem}.npz").is_file()
        assert decode(v).shape[0] == SMALL.num_frames
    monkeypatch.setattr(generate_module, "write_mp4", real_write)
    summary = generate_synthetic(out, SMALL, workers=1, progress=False)
    assert (summary.generated, summary.reused) == (24, 6)
    assert not (out / generate_module.IN_PROGRESS_MARKER).exists() and not (out / ".tmp").exists()
    assert (out / "meta.json").is_file()


def test_refuses_foreign_or_different_output_unless_overwrite(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match=r"not empty \(notes.txt\).*overwrite"):
        generate_synthetic(foreign, SMALL, workers=1, progress=False)
    one = dataclasses.replace(SMALL, videos_per_class=1)
    generate_synthetic(foreign, one, workers=1, progress=False, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine" and (foreign / "meta.json").is_file()

    out = tmp_path / "s"
    generate_synthetic(out, one, workers=1, progress=False)
    with pytest.raises(OutputDirError, match=r"other settings \(seed: 0 -> 4\)"):
        generate_synthetic(out, dataclasses.replace(one, seed=4), workers=1, progress=False)
    summary = generate_synthetic(
        out, dataclasses.replace(one, seed=4), workers=1, progress=False, overwrite=True
    )
    assert summary.generated == 15
    assert json.loads((out / "meta.json").read_text())["config"]["seed"] == 4

    # Writing into a foreign folder never deletes its own files named like ours.
    clash = tmp_path / "clash"
    (clash / "videos").mkdir(parents=True)
    with pytest.raises(OutputDirError, match="not deleted automatically"):
        generate_synthetic(clash, one, workers=1, progress=False, overwrite=True)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputDirError, match="not a folder"):
        generate_synthetic(a_file, one, workers=1, progress=False)


def test_bright_actor_keeps_hues_random_and_the_actor_brighter():
    config = SynthConfig.preset("tiny", bright_actor=True, max_distractors=0)
    for c in build_classes(config)[:4]:
        clip = render_clip(config, c, 0)
        frames = clip.frames.astype(np.float32).mean(axis=-1)  # grey level
        actor, rest = frames[clip.actor_mask], frames[~clip.actor_mask]
        # the actor's stripes sit at 155-255, its dark marker is small; the background at most 100 (+ noise)
        assert np.median(actor) > 150 and np.percentile(rest, 99) < 120
    plain = render_clip(SynthConfig.preset("tiny", max_distractors=0), build_classes(config)[0], 0)
    bright = render_clip(config, build_classes(config)[0], 0)
    assert np.array_equal(plain.points, bright.points)  # same random draws: only colours change
