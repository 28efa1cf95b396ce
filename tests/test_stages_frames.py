"""Frame-difference samplers, the video reader fallback, and stage plumbing."""

from __future__ import annotations

import numpy as np
import pytest

from qfeat.pipeline.stages import Stage
from qfeat.pipeline.video.sampling import STRATEGIES, frame_differences, sample


def curve(n: int, peaks: dict[int, float]) -> np.ndarray:
    d = np.full(n, 0.1, np.float32)
    d[0] = 0.0
    for i, v in peaks.items():
        d[i] = v
    return d


def test_frame_differences():
    luma = np.zeros((4, 2, 2), np.float32)
    luma[2] += 10
    np.testing.assert_allclose(frame_differences(luma), [0, 0, 10, 10])


def test_difference_picks_the_peak_of_each_segment():
    diff = curve(80, {3: 5.0, 17: 9.0, 25: 2.0, 79: 4.0})
    idx, padded = sample(diff, 8, "difference")
    assert not padded and len(idx) == 8
    assert {3, 17, 79} <= set(idx)
    assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(idx))


def test_cumulative_follows_the_motion():
    diff = np.zeros(100, np.float32)
    diff[60:80] = 1.0  # all change happens in frames 60..79
    idx, _ = sample(diff, 4, "cumulative")
    assert all(60 <= i < 80 for i in idx)
    static, _ = sample(np.zeros(100, np.float32), 4, "cumulative")
    assert static == sample(np.zeros(100, np.float32), 4, "uniform")[0]


def test_cumulative_never_repeats_a_frame_while_others_exist():
    """Issue 16: one dominant cut gave five copies of one frame, and padded stayed false."""
    diff = np.full(100, 0.01, np.float32)
    diff[40] = 100.0  # a scene cut dwarfs every other change
    idx, padded = sample(diff, 8, "cumulative")
    assert len(set(idx)) == 8 and 40 in idx and not padded


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_gives_t_sorted_valid_indices(strategy):
    diff = np.random.default_rng(1).uniform(0, 1, 57).astype(np.float32)
    idx, padded = sample(diff, 8, strategy, seed=3)
    assert len(idx) == 8 and idx == sorted(idx) and all(0 <= i < 57 for i in idx)
    assert not padded and len(set(idx)) == 8  # no frame twice while others exist
    assert sample(diff, 8, strategy, seed=3)[0] == idx  # deterministic


def test_random_depends_on_seed_only():
    diff = np.zeros(200, np.float32)
    assert sample(diff, 8, "random", seed=1)[0] == sample(diff, 8, "random", seed=1)[0]
    assert sample(diff, 8, "random", seed=1)[0] != sample(diff, 8, "random", seed=2)[0]


def test_short_video_is_padded():
    idx, padded = sample(np.zeros(3, np.float32), 8, "difference")
    assert padded and len(idx) == 8 and set(idx) == {0, 1, 2}


@pytest.mark.parametrize(
    ("n", "t", "expected"),
    [
        (57, 8, [0, 8, 16, 24, 32, 40, 48, 56]),
        (10, 4, [0, 3, 6, 9]),
        (8, 8, list(range(8))),
        # halves round to even as numpy does: linspace(0, 5, 3) = 0, 2.5, 5
        (6, 3, [0, 2, 5]),
        (3, 5, [0, 0, 1, 2, 2]),  # fewer frames than T: repeated, and padded
    ],
)
def test_linspace_gives_the_released_qclip_indices(n, t, expected):
    """Issue 16.4: the Q-CLIP authors' loader reads round(linspace(0, n - 1, T))."""
    idx, padded = sample(np.zeros(n, np.float32), t, "linspace")
    assert idx == expected and padded == (n < t)


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown frame strategy"):
        sample(np.zeros(10, np.float32), 4, "best")


def test_pyav_fallback_reads_what_decord_reads(tmp_path):
    from qfeat.pipeline.demo.videos import clip_frames, encode_mp4
    from qfeat.pipeline.video.reader import DecordReader, PyAVReader

    frames = clip_frames("ball", "ref", 0, np.random.default_rng(0))[:12]
    path = tmp_path / "clip.mp4"
    encode_mp4(path, frames, crf=18)
    dec, pav = DecordReader(path), PyAVReader(path)
    assert (dec.info.n_frames, dec.info.width, dec.info.height) == (12, 96, 96)
    assert (pav.info.n_frames, pav.info.width, pav.info.height) == (12, 96, 96)
    np.testing.assert_array_equal(dec.frames([0, 5, 11]), pav.frames([0, 5, 11]))
    assert dec.lowres_luma(64).shape == pav.lowres_luma(64).shape == (12, 64, 64)


@pytest.fixture
def model_stages(monkeypatch):
    """Two registered stages, "counting" and "other", whose load builds a 1 MB "model"
    and is counted; the worker's model cache starts empty."""
    from dataclasses import dataclass

    from qfeat.pipeline import worker
    from qfeat.pipeline.settings import Settings

    builds = []

    @dataclass(frozen=True)
    class CountingSettings(Settings):
        section = "counting"
        x: int = 0

    class Counting(Stage):
        name = "counting"
        modality = "video"
        settings = CountingSettings

        def load(self):
            builds.append(self.name)
            self.model = bytearray(1 << 20)

    class Other(Counting):
        name = "other"

    monkeypatch.setattr(worker, "_MODELS", {})
    stages = {"counting": Counting, "other": Other}

    def instance(name: str, x: int):
        task = worker.ShardTask(stage=stages[name], settings={"x": x}, seed=0, device="cpu",
                                threads=0, folder="", index=0, items=[], upstream={})  # fmt: skip
        return worker._stage_instance(task)

    return worker, builds, instance


def test_model_is_built_once_per_worker(model_stages):
    _, builds, instance = model_stages
    a = instance("counting", 1)
    b = instance("counting", 1)
    c = instance("counting", 2)
    assert a is b and a is not c and len(builds) == 2


def test_a_finished_stage_gives_its_models_back(model_stages):
    """The runner has every worker drop a stage's models when the stage ends, so that
    the next stage's model (Qwen2.5-VL after SAM) gets the memory."""
    import gc
    import weakref

    worker, _, instance = model_stages
    built = [instance("counting", x) for x in (1, 2)]
    other = instance("other", 1)
    gone = [weakref.ref(s) for s in built]
    del built
    assert worker.release_models("counting") == 2
    gc.collect()
    assert [ref() for ref in gone] == [None, None]  # nothing else held them
    assert list(worker._MODELS.values()) == [other]
    assert worker.release_models("counting") == 0


def test_stage_names_the_command_for_a_missing_upstream(qfeat, tmp_path):
    result = qfeat("stage", "clip", "demo-video", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert "needs 'frames'" in result.output
    assert "qfeat stage frames demo-video" in result.output
