"""``fsar data merge-parts DIR``: check the parts of a ``--part I/N`` run and build what training reads.

Works for the three commands that take ``--part`` (``fsar track``, ``fsar data prepare``, ``fsar extract-features``):
the part manifests in ``DIR/.fsar-parts/`` say which command wrote them. The last part to finish merges by itself;
this command is for checking, for a merge that was interrupted, or after re-running a failed part. Exit status 0
when merged, 1 when parts are missing, unfinished or inconsistent (the message names them).
"""

from __future__ import annotations

import argparse


def register_merge(sub) -> None:
    """Add ``merge-parts`` to the ``fsar data`` sub-commands."""
    p = sub.add_parser(
        "merge-parts",
        help="check the parts of a --part I/N run (track, data prepare, extract-features) and merge them",
        description="Check that every part of a `--part I/N` run in DIR finished, that the parts cover every "
        "video once and that their files are there, then write what a single-machine run writes at its end "
        "(clip store: split tables, build.json, index.json; feature cache: index.json; all: errors.txt). The last "
        "part to finish does this by itself.",
    )
    p.add_argument("dir", metavar="DIR", help="the --out folder the parts wrote into")
    p.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fsar.data.feature_store import FEATURES_KIND, merge_feature_parts
    from fsar.data.prepare import FRAMES_KIND, STORE_KIND, merge_clip_store_parts, merge_frame_folder_parts
    from fsar.parts import gather_parts
    from fsar.tracking.parts import KIND as TRACK_KIND
    from fsar.tracking.parts import merge_track_parts

    merges = {
        TRACK_KIND: (merge_track_parts, "track files: data.tracks={}"),
        STORE_KIND: (merge_clip_store_parts, "data.clip_store={}"),
        FRAMES_KIND: (merge_frame_folder_parts, "data.root={}"),
        FEATURES_KIND: (merge_feature_parts, "data.feature_cache={}"),
    }
    out = Path(args.dir)
    manifests = gather_parts(out)
    kind = manifests[0]["kind"]
    merge, use = merges[kind]
    merge(out, manifests)
    units = sum(len(m["units"]) for m in manifests)
    failures = sum(len(m["errors"]) for m in manifests)
    print(
        f"{out}: {len(manifests)} parts of a {kind} run checked and merged: {units} units, {failures} failed"
    )
    if failures:
        print(f"the list of failures is in {out / 'errors.txt'}")
    print(f"use it with {use.format(out)}")
    return 0
