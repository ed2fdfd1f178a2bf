"""Reading frames from videos: encoded files (PyAV) and folders of frame images (OpenCV).

One abstraction, ``Video`` (in the spirit of pytorchvideo's ``EncodedVideo``), with two implementations:

- ``EncodedVideo``: an mp4 / webm / mkv / avi / mov file decoded with PyAV. Frame ``i`` is the ``i``-th frame the
  decoder returns, in presentation order. The frame count is found by decoding the whole file once (container
  metadata such as ``stream.frames`` is missing or wrong for many webm/mkv files), lazily, and cached on the object.
  ``frames(indices)`` decodes sequentially from the start and stops at ``max(indices)``; it never decodes more.
- ``FrameFolderVideo``: a folder of ``.jpg`` / ``.jpeg`` / ``.png`` frames, the layout of the TA2N / TRX / OTAM
  codebases (ta2n.md §6). Frames are ordered by **natural sort** (``img_2`` before ``img_10``), so zero padding is
  not needed. Only the requested frames are read. Well-known junk files (``.DS_Store``, ``Thumbs.db``,
  ``desktop.ini``, macOS ``._*`` resource forks) are ignored; any other file or sub-folder is an error that lists
  them, because silently skipping it could hide a broken extraction.

``open_video(path)`` picks the implementation. Every failure is an ``fsar.errors.VideoError(path, reason)`` whose
reason says what to do; an index outside ``[0, num_frames-1]`` is an ``IndexError`` naming the file and the range.
Frames are returned as ``uint8`` RGB arrays ``[len(indices), H, W, 3]``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fsar.errors import VideoError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".avi", ".mov")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
JUNK_FILE_NAMES: frozenset[str] = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})

_REENCODE_HINT = (
    "re-download the video or re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`"
)


def natural_sort_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers: ``img_2`` < ``img_10``; ties broken by the exact name."""
    parts = re.split(r"(\d+)", name)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)
    return (key, name)


def is_junk_file(name: str) -> bool:
    """Files left by file managers that may sit in a frame folder and are ignored."""
    return name in JUNK_FILE_NAMES or name.startswith("._")


def _check_indices(path: Path, indices: Sequence[int] | np.ndarray, num_frames: int | None) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise ValueError(f"{path}: frame indices must be a 1-D sequence, got shape {idx.shape}")
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{path}: frame indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.size:
        bad = idx[(idx < 0) | ((idx >= num_frames) if num_frames is not None else False)]
        if bad.size:
            top = f"{num_frames - 1}" if num_frames is not None else "num_frames-1"
            raise IndexError(f"{path}: frame index {int(bad[0])} is out of range; valid indices are 0..{top}")
    return idx


class Video(ABC):
    """A readable video: a frame count, a frame size, an optional frame rate and random access to frames."""

    path: Path

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """Exact number of frames (>= 1)."""

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]:
        """(H, W) of the frames."""

    @property
    @abstractmethod
    def fps(self) -> float | None:
        """Frames per second, or None when unknown (frame folders)."""

    @abstractmethod
    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 RGB frames ``[len(indices), H, W, 3]``; indices may repeat and be in any order."""

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class EncodedVideo(Video):
    """A video file decoded with PyAV (FFmpeg). The file is opened per call, so the object can be pickled to
    data-loader workers and holds no open handle.

    ``last_decode_stats`` records what the latest ``frames`` call cost: ``{"frames": decoded frames,
    "packets": demuxed packets}``; tests use it to check that only the needed prefix is decoded.
    """

    def __init__(self, path: str | Path, num_frames: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise VideoError(self.path, "video file not found; check the path / dataset root")
        if not self.path.is_file():
            raise VideoError(self.path, "not a regular file; expected a video file or a frame folder")
        if num_frames is not None and int(num_frames) < 1:
            raise ValueError(f"{self.path}: a known frame count must be >= 1, got {num_frames}")
        # `num_frames`: a count found earlier by decoding this same file (e.g. cached by a ClipLoader).
        self._num_frames: int | None = None if num_frames is None else int(num_frames)
        self.last_decode_stats: dict[str, int] = {"frames": 0, "packets": 0}
        container = self._open()
        try:
            stream = container.streams.video[0]
            cc = stream.codec_context
            self._size = (int(cc.height), int(cc.width))
            rate = stream.average_rate or stream.guessed_rate
            self._fps = float(rate) if rate else None
        finally:
            container.close()
        if self._size[0] <= 0 or self._size[1] <= 0:
            raise VideoError(
                self.path, f"video stream reports an invalid frame size {self._size}; {_REENCODE_HINT}"
            )

    def _open(self):
        import av

        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoError(self.path, f"cannot open as a video ({exc}); {_REENCODE_HINT}") from None
        if not container.streams.video:
            container.close()
            raise VideoError(self.path, f"the file has no video stream; {_REENCODE_HINT}")
        return container

    def _decode(self, container):
        """Frames of the first video stream in presentation order; counts packets in ``last_decode_stats``."""
        import av

        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size:
                    self.last_decode_stats["packets"] += 1
                yield from packet.decode()
        except av.FFmpegError as exc:
            raise VideoError(self.path, f"decoding failed ({exc}); {_REENCODE_HINT}") from None

    @property
    def num_frames(self) -> int:
        if self._num_frames is None:
            self.last_decode_stats = {"frames": 0, "packets": 0}
            container = self._open()
            decoded = self._decode(container)
            try:
                n = sum(1 for _ in decoded)
            finally:
                decoded.close()
                container.close()
            self.last_decode_stats["frames"] = n
            if n == 0:
                raise VideoError(self.path, f"the video stream has zero decodable frames; {_REENCODE_HINT}")
            self._num_frames = n
        return self._num_frames

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def fps(self) -> float | None:
        return self._fps

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = _check_indices(self.path, indices, self._num_frames)
        h, w = self._size
        if idx.size == 0:
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        wanted = set(idx.tolist())
        last = int(idx.max())
        got: dict[int, np.ndarray] = {}
        self.last_decode_stats = {"frames": 0, "packets": 0}
        container = self._open()
        decoded = self._decode(container)
        i = -1
        try:
            for i, frame in enumerate(decoded):  # noqa: B007
                self.last_decode_stats["frames"] = i + 1
                if i in wanted:
                    got[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
        finally:
            decoded.close()
            container.close()
        if last not in got:
            # The file ended before `last`: we now know the exact count.
            if i < 0:
                raise VideoError(self.path, f"the video stream has zero decodable frames; {_REENCODE_HINT}")
            self._num_frames = i + 1
            _check_indices(self.path, idx, self._num_frames)
        shapes = {a.shape for a in got.values()}
        if len(shapes) != 1:
            raise VideoError(
                self.path, f"frame size changes inside the video {sorted(shapes)}; {_REENCODE_HINT}"
            )
        return np.stack([got[int(k)] for k in idx])


class FrameFolderVideo(Video):
    """A folder of frame images in natural-sort order, read with OpenCV and converted BGR -> RGB."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise VideoError(self.path, "frame folder not found; check the path / dataset root")
        if not self.path.is_dir():
            raise VideoError(self.path, "not a folder; expected a frame folder or a video file")
        images: list[str] = []
        unexpected: list[str] = []
        for entry in self.path.iterdir():
            name = entry.name
            if is_junk_file(name):
                continue
            if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(name)
            else:
                unexpected.append(name + ("/" if entry.is_dir() else ""))
        if unexpected:
            unexpected.sort(key=natural_sort_key)
            shown = ", ".join(unexpected[:10]) + (
                f" ... ({len(unexpected)} in all)" if len(unexpected) > 10 else ""
            )
            raise VideoError(
                self.path,
                f"frame folder holds files that are not {'/'.join(IMAGE_EXTENSIONS)} frames: {shown}; "
                "move them out of the folder",
            )
        if not images:
            raise VideoError(
                self.path,
                "empty frame folder (no .jpg/.jpeg/.png files); re-extract the frames, e.g. "
                "`ffmpeg -i VIDEO DIR/img_%05d.jpg`, or point to the video file instead",
            )
        images.sort(key=natural_sort_key)
        self.files: list[Path] = [self.path / n for n in images]
        self._size: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.files)

    @property
    def size(self) -> tuple[int, int]:
        if self._size is None:
            self._size = tuple(self._read(0).shape[:2])  # type: ignore[assignment]
        return self._size  # type: ignore[return-value]

    @property
    def fps(self) -> float | None:
        return None

    def _read(self, i: int) -> np.ndarray:
        import cv2

        file = self.files[i]
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise VideoError(file, "unreadable frame image (corrupt or not an image); re-extract the frames")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = _check_indices(self.path, indices, self.num_frames)
        if idx.size == 0:
            h, w = self.size
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        got = {int(i): self._read(int(i)) for i in np.unique(idx)}
        shapes = {a.shape for a in got.values()}
        if len(shapes) != 1:
            sizes = ", ".join(
                f"{self.files[i].name}: {a.shape[1]}x{a.shape[0]}" for i, a in sorted(got.items())
            )
            raise VideoError(self.path, f"frames have different sizes ({sizes}); re-extract the frames")
        if self._size is None:
            self._size = tuple(next(iter(got.values())).shape[:2])  # type: ignore[assignment]
        return np.stack([got[int(i)] for i in idx])


def open_video(path: str | Path, num_frames: int | None = None) -> Video:
    """A ``FrameFolderVideo`` for a directory, an ``EncodedVideo`` for a file with a video extension.

    ``num_frames`` passes on a frame count already found by decoding the same file (encoded files only), which
    saves the counting decode; frame folders are always counted by listing.
    """
    p = Path(path)
    if not p.exists():
        raise VideoError(p, "no such video file or frame folder; check the path / dataset root")
    if p.is_dir():
        return FrameFolderVideo(p)
    if p.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoError(
            p,
            f"unsupported file extension {p.suffix!r}; expected a frame folder or one of "
            f"{', '.join(VIDEO_EXTENSIONS)}",
        )
    return EncodedVideo(p, num_frames=num_frames)
