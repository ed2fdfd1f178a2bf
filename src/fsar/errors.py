"""Exception types of fsar. Every message names the offending file, line or key and says what to do."""

from __future__ import annotations


class FsarError(Exception):
    """Base class of fsar's own errors."""


class VideoError(FsarError):
    """A video file or frame folder cannot be read (missing, corrupt, empty)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SplitFormatError(FsarError):
    """A split file has a malformed line."""


class ConfigError(FsarError):
    """A configuration file or override is invalid (unknown key, wrong type)."""


class MissingVideosError(FsarError):
    """Videos listed in a split are missing and the user did not allow skipping them."""


class WeightsError(FsarError):
    """Pretrained weights cannot be loaded (missing file, wrong keys)."""


class TrackFileError(FsarError):
    """A point-track file (``.npz`` or a reference TATs pickle) is missing, malformed or inconsistent."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DataLayoutError(FsarError):
    """A dataset folder (videos root, split-files folder) is missing or does not hold the expected files."""


class OutputDirError(FsarError):
    """An output folder cannot be used as asked: it is not empty and is not an earlier run of the same job."""


class EpisodeError(FsarError, ValueError):
    """Episodes cannot be drawn as asked (too few classes or videos per class)."""


class FolderLockedError(OutputDirError):
    """Another process is writing into the output folder (it holds the folder's lock, see ``fsar.procs``)."""

    def __init__(self, folder: object, holder: str) -> None:
        self.folder = str(folder)
        self.holder = holder
        super().__init__(
            f"{self.folder}: in use by another fsar process ({holder}); wait for it to finish or stop it, or "
            "choose another output folder. Nothing here was changed. (The lock is released when that process "
            "exits, however it exits: never delete the .fsar-lock file by hand.)"
        )
