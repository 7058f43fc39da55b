"""The saturating power-law fit and its bootstrap, on synthetic data with known parameters."""

import math

import numpy as np
import pytest

from archsearch.scaling.fit import FitError, bootstrap_fit, fit_power_law, resample_weights

E, A, ALPHA = 1.8, 2.5e3, 0.25
TARGET = 6 * 7_430_870_688 * 6e12


def synthetic(rungs: int = 6, seeds: int = 3, noise: float = 0.004, seed: int = 1):
    rng = np.random.default_rng(seed)
    compute = np.repeat(np.logspace(14, 18, rungs), seeds)
    rung = np.repeat(np.arange(rungs), seeds)
    seed_ids = np.tile(np.arange(seeds), rungs)
    loss = (E + A * compute**-ALPHA) * np.exp(rng.normal(0, noise, compute.size))
    return rung, seed_ids, compute, loss


def test_exact_data_recovers_every_parameter():
    _, _, compute, _ = synthetic()
    loss = E + A * compute**-ALPHA
    fit = fit_power_law(compute, loss)
    assert fit.alpha == pytest.approx(ALPHA, rel=1e-3)
    assert fit.E == pytest.approx(E, rel=1e-3)
    assert fit.A_raw == pytest.approx(A, rel=2e-2)
    assert fit.predict(TARGET) == pytest.approx(E + A * TARGET**-ALPHA, rel=1e-4)
    assert fit.rms_log_residual < 1e-5
    assert fit.at_bound == ()


def test_noisy_data_recovers_alpha_and_the_intervals_cover_the_truth():
    rung, seeds, compute, loss = synthetic()
    result = bootstrap_fit(rung, seeds, compute, loss, TARGET, n_boot=100, random_seed=0)
    assert result.fit.alpha == pytest.approx(ALPHA, abs=0.03)
    for name, truth in (("alpha", ALPHA), ("E", E), ("prediction", E + A * TARGET**-ALPHA)):
        interval = result.intervals[name]
        assert interval.defined and interval.covers(truth), (name, interval, truth)
    assert result.intervals["alpha"].hi - result.intervals["alpha"].lo < 0.2
    assert result.notes == ()


def test_a_bad_point_does_not_drag_the_robust_fit():
    _, _, compute, loss = synthetic(noise=0.001)
    loss = loss.copy()
    loss[0] *= 1.5  # one mis-evaluated run at the smallest rung
    assert fit_power_law(compute, loss).alpha == pytest.approx(ALPHA, abs=0.03)


def test_fewer_than_three_compute_levels_is_an_error():
    with pytest.raises(FitError, match="3 distinct compute levels"):
        fit_power_law([1e15, 1e15, 1e16], [3.0, 3.1, 2.9])
    with pytest.raises(FitError):
        fit_power_law([1e15, 1e16, float("nan")], [3.0, 2.9, 2.8])


def test_three_rungs_and_one_seed_give_no_interval_rather_than_a_false_one():
    rung, seeds, compute, loss = synthetic(rungs=3, seeds=1)
    result = bootstrap_fit(rung, seeds, compute, loss, TARGET, n_boot=20)
    assert not result.intervals["alpha"].defined
    assert any("no interval" in note for note in result.notes)
    assert math.isfinite(result.prediction)


def test_resampling_is_seeded_and_depends_only_on_the_shape():
    rung = np.repeat(np.arange(4), 2)
    seed = np.tile(np.arange(2), 4)
    a = resample_weights(rung, seed, 5, random_seed=3)
    b = resample_weights(rung, seed, 5, random_seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for weights in a:
        assert weights.sum() == len(rung)  # every replicate has as many points as the data
        assert len({int(r) for r, w in zip(rung, weights, strict=True) if w}) >= 3
