import numpy as np
import pytest

from fsar.data.episodes import EpisodeSampler, load_episodes, save_episodes, shard_episodes
from fsar.errors import EpisodeError, FsarError

LABELS = np.repeat(np.arange(12), 8)  # 12 classes x 8 videos


def test_episode_structure_support_class_major_queries_shuffled():
    s = EpisodeSampler(LABELS, way=5, shot=2, queries=3, seed=0)
    ep = s.episode(0)
    assert len(ep.classes) == 5 and len(set(ep.classes)) == 5
    assert len(ep.support) == 10 and len(ep.query) == 15
    # support is class-major: shots of episode class c sit at positions [2c, 2c+1]
    for c, cls in enumerate(ep.classes):
        assert all(LABELS[v] == cls for v in ep.support[2 * c : 2 * c + 2])
    for v, lab in zip(ep.query, ep.query_labels):
        assert LABELS[v] == ep.classes[lab]
    assert len(set(ep.support) | set(ep.query)) == 25  # all distinct
    assert ep.support_labels == (0, 0, 1, 1, 2, 2, 3, 3, 4, 4)
    # queries are shuffled: over a few episodes the label order is not always sorted
    assert any(list(e.query_labels) != sorted(e.query_labels) for e in s.take(5))


def test_episode_is_pure_function_of_seed_and_index():
    a = EpisodeSampler(LABELS, 5, 1, 2, seed=7)
    b = EpisodeSampler(LABELS, 5, 1, 2, seed=7)
    assert a.episode(42) == b.episode(42)
    assert a.take(3, start=40)[2] == b.episode(42)  # order of drawing does not matter
    assert EpisodeSampler(LABELS, 5, 1, 2, seed=8).episode(42) != a.episode(42)
    # every index has its own episode: 50 episodes, 50 different draws (a repeat is vanishingly unlikely)
    draws = {(e.classes, e.support, e.query) for e in a.take(50)}
    assert len(draws) == 50


def test_ranks_get_disjoint_streams_covering_single_process_stream():
    single = EpisodeSampler(LABELS, 5, 1, 1, seed=3).take(8)
    r0 = EpisodeSampler(LABELS, 5, 1, 1, seed=3, rank=0, world_size=2).take(4)
    r1 = EpisodeSampler(LABELS, 5, 1, 1, seed=3, rank=1, world_size=2).take(4)
    assert {e.index for e in r0}.isdisjoint({e.index for e in r1})
    assert sorted(r0 + r1, key=lambda e: e.index) == single
    assert shard_episodes(single, 1, 2) == r1


def test_too_few_videos_is_a_clear_error():
    with pytest.raises(ValueError, match="only 3 of 3 classes|needs 5 classes"):
        EpisodeSampler(np.repeat(np.arange(3), 10), 5, 1, 1, seed=0)
    with pytest.raises(ValueError, match="at least 9 videos"):
        EpisodeSampler(LABELS, 5, 2, 7, seed=0)


def test_save_and_load_round_trip_and_split_mismatch(tmp_path):
    eps = EpisodeSampler(LABELS, 5, 1, 1, seed=1).take(20)
    path = tmp_path / "test_episodes.json"
    save_episodes(path, eps, labels=LABELS, meta={"benchmark": "toy", "split": "test"})
    loaded, meta = load_episodes(path, labels=LABELS)
    assert loaded == eps and meta["benchmark"] == "toy"
    with pytest.raises(FsarError, match="different split"):
        load_episodes(path, labels=LABELS[:-1])
    with pytest.raises(FsarError, match="not found"):
        load_episodes(tmp_path / "missing.json")


def test_order_episodes_hold_two_twin_pairs_and_are_reproducible():
    from fsar.data.episodes import OrderEpisodeSampler

    labels = [c for c in range(10) for _ in range(4)]
    twins = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4}
    sampler = OrderEpisodeSampler(labels, twins, way=5, shot=1, queries=1, seed=7)
    episodes = sampler.take(200)
    for ep in episodes:
        classes = set(ep.classes)
        pairs = {frozenset((a, twins[a])) for a in classes if a in twins and twins[a] in classes}
        assert len(pairs) >= 2 and len(classes) == 5
        assert all(labels[v] == ep.classes[ep.support_labels[k]] for k, v in enumerate(ep.support))
        assert all(labels[v] == ep.classes[y] for v, y in zip(ep.query, ep.query_labels))
    # every pair is used, and the fifth class is sometimes a non-twin class
    used = {
        frozenset((a, twins[a]))
        for ep in episodes
        for a in ep.classes
        if a in twins and twins[a] in ep.classes
    }
    assert len(used) == 3
    assert any(set(ep.classes) & {6, 7, 8, 9} for ep in episodes)
    again = OrderEpisodeSampler(labels, twins, way=5, shot=1, queries=1, seed=7).take(200)
    assert again == episodes
    # a stream apart from the standard episodes of the same seed
    assert EpisodeSampler(labels, 5, 1, 1, seed=7).take(5) != episodes[:5]


def test_order_episodes_refuse_asymmetric_or_too_few_pairs():
    from fsar.data.episodes import OrderEpisodeSampler

    labels = [c for c in range(6) for _ in range(3)]
    with pytest.raises(EpisodeError, match="symmetric"):
        OrderEpisodeSampler(labels, {0: 1}, way=5, shot=1, queries=1, seed=0)
    with pytest.raises(EpisodeError, match="2 reversed-order twin pairs"):
        OrderEpisodeSampler(labels, {0: 1, 1: 0}, way=5, shot=1, queries=1, seed=0)
