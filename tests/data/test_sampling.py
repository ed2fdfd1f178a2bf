import numpy as np
import pytest

from fsar.data.sampling import FRAME_SAMPLERS, apply_short_video_policy, build_frame_sampler, is_short

NAMES = ["uniform", "ta2n", "segment"]


def rng(seed=0):
    return np.random.default_rng(seed)


def test_registry_lists_the_samplers():
    assert FRAME_SAMPLERS.names() == sorted(NAMES)
    with pytest.raises(KeyError, match="unknown frame sampler 'tsn'"):
        build_frame_sampler("tsn")


def test_ta2n_golden_values():
    s = build_frame_sampler("ta2n")
    assert s(100, 8, False, rng()).tolist() == [1, 14, 28, 42, 56, 70, 84, 98]
    assert s(10, 8, False, rng()).tolist() == [0, 1, 2, 3, 5, 6, 7, 9]
    assert s(8, 8, True, rng()).tolist() == list(range(8))


def test_ta2n_train_jitter_bounds_and_seeding():
    s = build_frame_sampler("ta2n")
    starts, ends = set(), set()
    for seed in range(200):
        idx = s(100, 8, True, rng(seed))
        starts.add(int(idx[0]))
        ends.add(int(idx[-1]))
        assert np.all(np.diff(idx) > 0)
    assert starts == set(range(0, 6)) and ends == set(
        range(94, 100)
    )  # pad = min(5, 92/2) = 5, inclusive ends
    np.testing.assert_array_equal(s(100, 8, True, rng(3)), s(100, 8, True, rng(3)))
    # pad = int(min(5, (12-8)/2)) = 2: start in {0,1,2}, end in {9,10,11}; end-start < 8 falls back to 0..11
    for seed in range(50):
        idx = s(12, 8, True, rng(seed))
        start, end = int(idx[0]), int(idx[-1])
        assert (start, end) == (0, 11) or (start <= 2 and end >= 9 and end - start >= 8)


def test_uniform_is_linspace_and_ignores_train():
    s = build_frame_sampler("uniform")
    assert s(100, 8, True, rng(1)).tolist() == [0, 14, 28, 42, 56, 70, 84, 99]
    np.testing.assert_array_equal(s(37, 8, True, rng(1)), s(37, 8, False, rng(2)))


def test_segment_test_centres_and_train_in_segment():
    s = build_frame_sampler("segment")
    assert s(80, 8, False, rng()).tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    for seed in range(30):
        idx = s(83, 8, True, rng(seed))
        lo = (np.arange(8) * 83) // 8
        hi = (np.arange(8) + 1) * 83 // 8
        assert np.all(idx >= lo) and np.all(idx < hi)
    draws = {tuple(s(83, 8, True, rng(seed))) for seed in range(10)}
    assert len(draws) > 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False])
def test_every_sampler_shape_dtype_range(name, train):
    s = build_frame_sampler(name)
    for n in [1, 3, 7, 8, 9, 15, 16, 50, 333]:
        idx = s(n, 8, train, rng(n))
        assert idx.shape == (8,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() <= n - 1
        assert np.all(np.diff(idx) >= 0)


@pytest.mark.parametrize("name", NAMES)
def test_short_video_policy_repeats_last_frame(name):
    s = build_frame_sampler(name)
    for train in (True, False):
        assert s(5, 8, train, rng()).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
        assert s(1, 8, train, rng()).tolist() == [0] * 8
    assert is_short(7, 8) and not is_short(8, 8)
    with pytest.raises(ValueError, match="0 frames"):
        s(0, 8, False, rng())


def test_apply_short_video_policy_guards():
    assert apply_short_video_policy(3, 5).tolist() == [0, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="n < T"):
        apply_short_video_policy(8, 8)
    with pytest.raises(ValueError, match="T must be >= 1"):
        apply_short_video_policy(3, 0)


@pytest.mark.parametrize("name", NAMES)
def test_support_holds_every_frame_the_sampler_can_pick(name):
    from fsar.data.sampling import sampler_support

    s = build_frame_sampler(name)
    for n in [1, 3, 7, 8, 9, 10, 12, 17, 31, 48, 100, 301]:
        support = sampler_support(s, n, 8)
        assert np.all(np.diff(support) > 0) and support.min() >= 0 and support.max() < n
        picked = {int(i) for seed in range(200) for i in s(n, 8, True, rng(seed))}
        picked |= {int(i) for i in s(n, 8, False, rng())}
        assert picked <= set(support.tolist()), (name, n)
        if name == "ta2n":  # every (start, end) choice is reachable, so the support is exactly what is picked
            assert len(support) <= 48
    assert sampler_support(build_frame_sampler("uniform"), 100, 8).tolist() == [0, 14, 28, 42, 56, 70, 84, 99]
    assert len(sampler_support(build_frame_sampler("segment"), 100, 8)) == 100
    assert sampler_support(lambda n, T, train, rng: None, 5, 8).tolist() == [0, 1, 2, 3, 4]  # no support: all
