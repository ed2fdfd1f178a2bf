"""``fsar track --part I/N``: one part of a tracking run, and the merge of the parts (rule and bookkeeping in
:mod:`fsar.parts`).

Units are the run's videos in job order (folder mode: the sorted videos; benchmark mode: split order, then split
file order, each video once); unit ``u`` goes to part ``u mod N + 1``, named by its track file's path relative to
``--out``. Track files are per video, so the parts' outputs never collide; videos missing under the benchmark root
are reported by part ``m mod N + 1`` for the ``m``-th missing one. Training reads the track files directly
(``data.tracks=OUT``), so the merge builds no index: it checks that every part finished, that the parts cover every
video and that every track file is there, and writes ``OUT/errors.txt`` exactly as a single-machine run does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fsar.parts import (
    Part,
    PartsError,
    check_unit_files,
    finish_part,
    gather_parts,
    merged_errors,
    plan_hash,
    start_part,
    write_errors_file,
)
from fsar.tracking.runner import ERRORS_FILE, TrackingReport, TrackingSettings, TrackJob, run_tracking

KIND = "track"
MISSING_REASON = "video missing under the benchmark root"


def _unit_name(job: TrackJob, out_dir: Path) -> str:
    return job.output.relative_to(out_dir).as_posix()


def track_part(
    jobs: Sequence[TrackJob],
    missing_entries: Sequence[str],
    settings: TrackingSettings,
    out_dir: str | os.PathLike[str],
    part: Part,
    *,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[TrackingReport, list[dict[str, Any]] | None]:
    """Track part ``part`` of ``jobs`` (all of the run's jobs, in order) and record it; merge when it is the last
    part to finish. Returns this part's report (missing videos it reports included) and the merged manifests
    (None when other parts are not finished yet)."""
    out_dir = Path(out_dir)
    names = [_unit_name(job, out_dir) for job in jobs]
    params = settings.file_params(settings.create_tracker().params())
    plan = plan_hash(
        {
            "kind": KIND,
            "units": [[n, j.video_id] for n, j in zip(names, jobs)],
            "missing": [str(e) for e in missing_entries],
            "params": params,
        }
    )
    start_part(out_dir, part, KIND, plan, len(jobs))
    mine = [i for i in range(len(jobs)) if part.owns(i)]
    report = run_tracking(
        [jobs[i] for i in mine], settings, workers=workers, progress=progress, overwrite=overwrite
    )
    failed = {Path(source): message for source, message in report.failed}
    by_source = {jobs[i].source: names[i] for i in mine}
    errors = [([0, str(source)], f"{source}: {message}\n") for source, message in failed.items()]
    for m, entry in enumerate(missing_entries):
        if part.owns(m):
            source = Path(str(entry))
            errors.append(([1, m], f"{source}: {MISSING_REASON}\n"))
            report.failed.append((source, MISSING_REASON))
    finish_part(
        out_dir,
        part,
        KIND,
        plan,
        len(jobs),
        [names[i] for i in mine],
        errors,
        {"failed_units": sorted(by_source[s] for s in failed if s in by_source)},
    )
    try:
        manifests = gather_parts(out_dir, KIND)
    except PartsError:  # other parts unfinished (the last one merges), or inconsistent (merge-parts says how)
        return report, None
    return report, merge_track_parts(out_dir, manifests)


def merge_track_parts(out_dir: str | os.PathLike[str], manifests: list[dict[str, Any]] | None = None):
    """Check the parts of a tracking run in ``out_dir`` and write ``errors.txt``; returns the manifests."""
    out_dir = Path(out_dir)
    manifests = manifests if manifests is not None else gather_parts(out_dir, KIND)
    failed = {name for m in manifests for name in m["data"].get("failed_units", [])}
    check_unit_files(out_dir, manifests, failed)
    write_errors_file(out_dir / ERRORS_FILE, merged_errors(manifests))
    return manifests
