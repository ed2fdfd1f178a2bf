import torch

from fsar.models.ta2n import TA2N
from fsar.models.ta2n.viz import plot_episode_alignment

from ._util import episode, randomise_final_layers


def test_plot_episode_alignment_writes_png(tmp_path):
    torch.manual_seed(0)
    model = TA2N(T=8, shot=1, dim=(8, 8)).eval()
    randomise_final_layers(model)
    support, query = episode(3, 1, 2, 8, dtype=torch.float32)
    _, _, diag = model(support, query, return_diagnostics=True)
    ids = ["s0", "s1", "s2", "q0", "q1"]
    frames = [torch.rand(8, 3, 16, 16) for _ in ids]
    out = plot_episode_alignment(
        diag, tmp_path / "sub" / "episode.png", video_ids=ids, frames=frames, query_index=1
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_without_stages(tmp_path):
    model = TA2N(T=8, shot=1, dim=(8, 8), first_stage=False, second_stage=False)
    _, _, diag = model(*episode(2, 1, 1, 8, dtype=torch.float32), return_diagnostics=True)
    out = plot_episode_alignment(diag, tmp_path / "bare.png")
    assert out.stat().st_size > 1000
