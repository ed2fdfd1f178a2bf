"""The modules of ``fsar.tracking`` import each other without cycles, function-level imports included."""

import ast
from pathlib import Path

import fsar.tracking

PACKAGE = Path(fsar.tracking.__file__).parent


def tracking_imports(path: Path) -> set[str]:
    """Names of the ``fsar.tracking`` modules that ``path`` imports anywhere (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fsar.tracking."):
            out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("fsar.tracking.")}
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle ``[a, b, ..., a]`` of ``graph`` (module -> imported modules), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done and (found := visit(nxt, path + [nxt])):
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (found := visit(start, [start])):
            return found
    return None


def test_find_cycle_detects_a_cycle():
    assert find_cycle({"registry": {"lk"}, "lk": {"registry"}}) == ["lk", "registry", "lk"]
    assert find_cycle({"registry": {"lk", "base"}, "lk": {"base"}, "base": set()}) is None


def test_tracking_modules_form_no_import_cycle():
    graph = {p.stem: tracking_imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert {"lk", "cotracker"} <= graph["registry"]  # the registry builds the trackers (lazily)
    assert "registry" not in graph["lk"] | graph["cotracker"]
    assert find_cycle(graph) is None


def test_lk_tracking_runs_without_importing_torch(tmp_path):
    """`fsar track` with LK and its spawned workers stay light: importing the runner, reading a video and tracking it
    never import torch (fsar.data exports its names lazily). Startup of every worker used to include torch's
    import (about 2 s)."""
    import subprocess
    import sys

    from tests.helpers import make_frames, write_encoded_video

    video = write_encoded_video(tmp_path / "v.mp4", make_frames(12, 48, 64, seed=3))
    code = f"""
import sys
from pathlib import Path
from fsar.tracking.runner import TrackingSettings, TrackJob, run_tracking
import fsar.data
job = TrackJob(source=Path({str(video)!r}), output=Path({str(tmp_path / "out.npz")!r}), video_id="v")
report = run_tracking([job], TrackingSettings(tracker="lk", grid_size=4, points=8), progress=False)
assert len(report.done) == 1, report.failed
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
