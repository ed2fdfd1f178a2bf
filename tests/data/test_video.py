import numpy as np
import pytest

from fsar.data.video import EncodedVideo, FrameFolderVideo, natural_sort_key, open_video
from fsar.errors import VideoError
from tests.helpers import frame_index_from_blue, make_frames, write_encoded_video, write_frame_folder

T = 24


@pytest.fixture(scope="module")
def source():
    return make_frames(T, 48, 64, seed=1)


@pytest.fixture(scope="module", params=[("mpeg4", ".mp4"), ("libx264", ".mp4"), ("libvpx-vp9", ".webm")])
def encoded(request, tmp_path_factory, source):
    codec, suffix = request.param
    path = tmp_path_factory.mktemp("enc") / f"clip_{codec}{suffix}"
    return write_encoded_video(path, source, codec=codec, fps=12)


def test_webm_container_metadata_is_unreliable(tmp_path, source):
    """Why frames are counted by decoding: a webm reports 0 frames in its stream metadata."""
    import av

    path = write_encoded_video(tmp_path / "c.webm", source, codec="libvpx-vp9")
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0
    assert open_video(path).num_frames == T


def test_encoded_video_metadata_and_exact_count(encoded):
    v = open_video(encoded)
    assert isinstance(v, EncodedVideo)
    assert v.size == (48, 64)
    assert v.fps == pytest.approx(12.0)
    assert v.num_frames == T
    assert v.last_decode_stats["frames"] == T  # counted by decoding, once
    assert len(v) == T


def test_encoded_frames_match_source_pixels(encoded, source):
    v = open_video(encoded)
    idx = [5, 0, 23, 5, 11]  # unsorted, repeated, includes the last frame
    got = v.frames(idx)
    assert got.shape == (5, 48, 64, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - source[idx].astype(np.int16))
    assert diff.mean() < 3.0  # measured: 1.8 (mpeg4 20 Mb/s), 1.4 (x264 crf 0), 1.4 (VP9 lossless); yuv420p
    np.testing.assert_array_equal(frame_index_from_blue(got), idx)
    np.testing.assert_array_equal(got[0], got[3])


def test_encoded_decodes_only_the_needed_prefix(encoded):
    v = open_video(encoded)
    v.frames([1, 0])
    assert v.last_decode_stats["frames"] == 2
    assert v.last_decode_stats["packets"] < T // 2  # a few packets of decoder delay at most, not the file
    v.frames([10])
    assert v.last_decode_stats["frames"] == 11


def test_b_frames_are_returned_in_presentation_order(tmp_path, source):
    import av

    path = write_encoded_video(tmp_path / "b.mp4", source, codec="libx264", options={"crf": "18", "bf": "3"})
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.has_b_frames  # decode order differs from display order
    v = open_video(path)
    idx = [7, 3, 15, 0]
    np.testing.assert_array_equal(frame_index_from_blue(v.frames(idx)), idx)
    assert v.last_decode_stats["frames"] == 16


def test_encoded_out_of_range_index_names_file_and_range(encoded):
    v = open_video(encoded)
    with pytest.raises(IndexError, match=rf"{encoded.name}.*0\.\.{T - 1}"):
        v.frames([T])  # count not known yet: found by decoding to the end
    assert v.num_frames == T
    with pytest.raises(IndexError, match=r"-1"):
        v.frames([-1])
    with pytest.raises(IndexError, match=rf"0\.\.{T - 1}"):
        v.frames([0, T + 3])


def test_corrupt_video_file_raises_video_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match=r"broken\.mp4.*re-encode"):
        _ = open_video(bad).num_frames


def test_truncated_video_decodes_fewer_frames(tmp_path, source):
    """A Matroska file cut in half still opens; the exact count is what decodes, and later indices fail."""
    full = write_encoded_video(tmp_path / "full.mkv", source)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    v = open_video(cut)
    n = v.num_frames
    assert 0 < n < T  # measured: 9 of 24
    with pytest.raises(IndexError, match=rf"cut\.mkv.*0\.\.{n - 1}"):
        v.frames([n])
    np.testing.assert_array_equal(frame_index_from_blue(v.frames([n - 1])), [n - 1])


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(VideoError, match="no such video"):
        open_video(tmp_path / "nope.mp4")
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    with pytest.raises(VideoError, match=r"unsupported file extension '\.txt'"):
        open_video(txt)


def test_zero_frame_video_is_an_error(tmp_path):
    import av

    path = tmp_path / "empty.avi"  # AVI writes a valid header with no frames
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    v = open_video(path)
    with pytest.raises(VideoError, match=r"empty\.avi: the video stream has zero decodable frames"):
        _ = v.num_frames
    with pytest.raises(VideoError, match="zero decodable frames"):
        open_video(path).frames([0])


def test_natural_sort_key():
    names = ["img_10.jpg", "img_2.jpg", "img_1.jpg", "img_100.jpg", "IMG_3.jpg"]
    assert sorted(names, key=natural_sort_key) == [
        "img_1.jpg",
        "img_2.jpg",
        "IMG_3.jpg",
        "img_10.jpg",
        "img_100.jpg",
    ]


def test_frame_folder_natural_order_and_pixels(tmp_path, source):
    folder = write_frame_folder(
        tmp_path / "v", source[:12], pattern="img_{i}.png", start=1
    )  # lossless, unpadded
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "Thumbs.db").write_bytes(b"junk")
    v = open_video(folder)
    assert isinstance(v, FrameFolderVideo)
    assert v.num_frames == 12 and v.fps is None and v.size == (48, 64)
    assert [f.name for f in v.files[:3]] == ["img_1.png", "img_2.png", "img_3.png"]
    assert v.files[9].name == "img_10.png"  # lexicographic order would put img_10 second
    idx = [11, 1, 1, 9]
    np.testing.assert_array_equal(v.frames(idx), source[idx])  # PNG: exact, and RGB order kept
    with pytest.raises(IndexError, match=r"0\.\.11"):
        v.frames([12])


def test_frame_folder_jpeg_close_to_source(tmp_path, source):
    v = open_video(write_frame_folder(tmp_path / "j", source[:4]))
    got = v.frames([0, 3])
    assert np.abs(got.astype(int) - source[[0, 3]]).mean() < 3.0
    np.testing.assert_array_equal(frame_index_from_blue(got), [0, 3])


def test_frame_folder_errors(tmp_path, source):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty.*empty frame folder"):
        open_video(empty)

    odd = write_frame_folder(tmp_path / "odd", source[:3])
    (odd / "notes.txt").write_text("x")
    (odd / "sub").mkdir()
    with pytest.raises(VideoError, match=r"notes\.txt, sub/"):
        open_video(odd)

    broken = write_frame_folder(tmp_path / "broken", source[:3])
    (broken / "img_2.jpg").write_bytes(b"not an image")
    v = open_video(broken)
    np.testing.assert_array_equal(v.frames([0]).shape, (1, 48, 64, 3))
    with pytest.raises(VideoError, match=r"img_2\.jpg: unreadable frame image"):
        v.frames([0, 1])


def test_known_frame_count_skips_the_counting_decode(encoded):
    v = open_video(encoded, num_frames=T)
    assert v.num_frames == T and v.last_decode_stats["frames"] == 0
    wrong = open_video(encoded, num_frames=T + 5)  # a stale count: reading past the end still fails cleanly
    with pytest.raises(IndexError, match=rf"0\.\.{T - 1}"):
        wrong.frames([T + 2])
    assert wrong.num_frames == T


def uniform8(n):
    return np.linspace(0, n - 1, 8).astype(np.int64)


def test_first_read_is_one_decode_with_the_exact_count(encoded, source):
    """``sample`` picks indices with the count and reads them in one pass over the file (MP4: the listed count,
    verified by the same decode; WebM: no listed count, the decoded frames are kept)."""
    v = open_video(encoded)
    seen = []
    idx, got, n = v.sample(lambda count: seen.append(count) or uniform8(count))
    assert n == T and seen == [T] and idx.tolist() == uniform8(T).tolist()
    assert v.last_decode_stats["passes"] == 1 and v.last_decode_stats["frames"] == T
    np.testing.assert_array_equal(frame_index_from_blue(got), idx)
    np.testing.assert_array_equal(got, open_video(encoded).frames(idx))  # the same pixels as a plain read
    assert v.num_frames == T and v.size == (48, 64)  # the count is now known: no further decode
    again_idx, again, again_n = v.sample(lambda count: np.array([count - 1, 0]))
    assert again_n == T and again_idx.tolist() == [T - 1, 0] and v.last_decode_stats["passes"] == 1
    np.testing.assert_array_equal(again, got[[-1, 0]])


def test_first_read_without_a_listed_count_past_the_retain_limit(tmp_path, source, monkeypatch):
    path = write_encoded_video(tmp_path / "c.webm", source, codec="libvpx-vp9")
    monkeypatch.setattr(EncodedVideo, "retain_limit_bytes", 10_000)  # about two 48x64 frames
    v = open_video(path)
    idx, got, n = v.sample(uniform8)
    assert n == T and v.last_decode_stats["passes"] == 2  # counted, then the chosen frames read again
    assert v.last_decode_stats["frames"] == 2 * T
    np.testing.assert_array_equal(frame_index_from_blue(got), idx)


def test_first_read_of_a_truncated_mp4_is_an_error(tmp_path, source):
    """An MP4 with its index first (faststart) cut short lists 24 frames; the decode stops with an error and the
    read fails instead of returning fewer frames."""
    import av

    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=12, options={"crf": "0"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for frame in source:
            for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 3 // 4])
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == T  # the sample table still lists every frame
    with pytest.raises(VideoError, match=r"cut\.mp4: decoding failed"):
        open_video(cut).sample(uniform8)
    idx, got, n = open_video(full).sample(uniform8)
    assert n == T


def test_first_read_of_a_short_or_empty_video(tmp_path, source):
    short = write_encoded_video(tmp_path / "short.mp4", source[:5])
    idx, got, n = open_video(short).sample(lambda count: np.minimum(np.arange(8), count - 1))
    assert n == 5 and idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    np.testing.assert_array_equal(frame_index_from_blue(got), idx)
    with pytest.raises(IndexError, match=r"short\.mp4.*0\.\.4"):
        open_video(short).sample(lambda count: np.arange(8))  # a chooser ignoring the count is refused
    import av

    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(VideoError, match="zero decodable frames"):
        open_video(empty).sample(uniform8)


def test_frame_folder_sample(tmp_path, source):
    v = open_video(write_frame_folder(tmp_path / "f", source[:10], pattern="img_{i}.png"))
    idx, got, n = v.sample(uniform8)
    assert n == 10 and idx.tolist() == uniform8(10).tolist()
    np.testing.assert_array_equal(got, source[idx])


def corrupt_packet_payload(path, packet_index, out):
    """Copy ``path`` to ``out`` with 8 bytes in the middle of one packet's payload flipped (a damaged frame whose
    container is intact)."""
    import av

    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        pos, size = int(packets[packet_index].pos), int(packets[packet_index].size)
    data = bytearray(path.read_bytes())
    start = pos + size // 2
    for k in range(start, start + 8):
        data[k] ^= 0x5A
    out.write_bytes(bytes(data))
    return out


def test_verify_reads_every_frame_and_reports_concealed_corruption(tmp_path, source):
    import av.logging

    good = write_encoded_video(tmp_path / "good.mp4", source)
    assert open_video(good).verify() == T
    bad = corrupt_packet_payload(good, 12, tmp_path / "bad.mp4")
    pattern = r"bad\.mp4: the decoder reported \d+ error\(s\) in \d+ frames \(\[mpeg4\]"
    with pytest.raises(VideoError, match=pattern):
        open_video(bad).verify()
    assert av.logging.get_level() is None  # FFmpeg's log is switched off again afterwards
    with pytest.raises(VideoError, match="zero decodable frames"):
        import av

        empty = tmp_path / "empty.avi"
        with av.open(str(empty), "w") as c:
            s = c.add_stream("mpeg4", rate=25)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            c.start_encoding()
        open_video(empty).verify()


def test_verify_frame_folder_finds_broken_and_truncated_images(tmp_path, source):
    folder = write_frame_folder(tmp_path / "f", source[:10])
    assert open_video(folder).verify() == 10
    jpeg = folder / "img_7.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:-200])  # the end of the picture is lost
    v = open_video(folder)
    assert v.frames([6]).shape == (1, 48, 64, 3)  # OpenCV decodes the truncated JPEG without an error
    with pytest.raises(
        VideoError, match=r"img_7\.jpg: the JPEG file does not end with its end-of-image marker"
    ):
        v.verify()
    png = write_frame_folder(tmp_path / "p", source[:4], pattern="img_{i}.png")
    (png / "img_3.png").write_bytes((png / "img_3.png").read_bytes()[:-12])
    with pytest.raises(VideoError, match=r"img_3\.png: "):  # OpenCV refuses a truncated PNG itself
        open_video(png).verify()
    padded = write_frame_folder(tmp_path / "z", source[:2])
    (padded / "img_1.jpg").write_bytes((padded / "img_1.jpg").read_bytes() + b"\x00" * 16)  # padding is fine
    assert open_video(padded).verify() == 2


def test_rgb_converter_gives_pyav_rgb24_pixels(encoded):
    """One shared swscale context (fsar.data.video.rgb_converter) converts exactly as to_ndarray("rgb24")."""
    import av

    from fsar.data.video import rgb_converter

    to_rgb = rgb_converter()
    with av.open(str(encoded)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == T
    for frame in frames:
        np.testing.assert_array_equal(to_rgb(frame), frame.to_ndarray(format="rgb24"))
