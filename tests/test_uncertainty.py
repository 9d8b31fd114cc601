import jax
import numpy as np
import pytest

from gtap_jax import Bands, choose_d, make_plan, uncertainty_bands
from gtap_jax.games import additive_game


def test_additive_game_bands_match_binomial_moments(mesh):
    """For v(S) = sum of w over S with S ~ Bernoulli(q): mean q sum(w), var q(1-q) sum(w^2)."""
    w = np.random.default_rng(0).uniform(0.5, 1.5, size=30)
    qs = [0.1, 0.3, 0.5, 0.7, 0.9]
    n = 4000
    bands = uncertainty_bands(jax.random.key(0), additive_game(w), 30, keep_fractions=qs, num_samples=n,
                              plan=make_plan(mesh=mesh))
    q = np.asarray(qs)
    true_mean = q * w.sum()
    true_std = np.sqrt(q * (1 - q) * np.sum(w**2))
    assert np.all(np.abs(bands.mean - true_mean) <= 5 * bands.stderr)
    # stderr of a sample std of a near-normal variable: std / sqrt(2(n - 1)).
    assert np.all(np.abs(bands.std - true_std) <= 5 * true_std / np.sqrt(2 * (n - 1)))
    assert bands.full_value == pytest.approx(w.sum(), rel=1e-5)
    assert bands.empty_value == 0.0
    assert bands.quantiles.shape == (5, 5)
    assert np.all(np.diff(bands.quantiles, axis=1) >= 0)
    assert choose_d(bands, "max_std") == 0.5


def _bands(mean, std, full):
    qs = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    return Bands(qs, mean, std, std / 10, np.array([0.5]), mean[:, None], 100, full, 0.1)


def test_choose_d_rules():
    b = _bands([0.2, 0.6, 0.85, 0.895, 0.9], [0.05, 0.2, 0.1, 0.02, 0.0], 0.9)
    assert choose_d(b, "max_std") == 0.4
    assert choose_d(b, "min_keep_within", tolerance=0.01) == 0.8
    assert choose_d(b, "min_keep_within", tolerance=0.06) == 0.6
    # q = 1 alone qualifies: d is clipped into (0, 1).
    assert 0.99 < choose_d(b, "min_keep_within", tolerance=1e-6) < 1.0
    with pytest.raises(ValueError, match="unknown rule"):
        choose_d(b, "median")


def test_bad_input():
    game = additive_game(np.ones(3))
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="keep fractions"):
        uncertainty_bands(key, game, 3, keep_fractions=[0.0, 0.5], num_samples=10)
    with pytest.raises(ValueError, match="non-empty"):
        uncertainty_bands(key, game, 3, keep_fractions=[], num_samples=10)
    with pytest.raises(ValueError, match="at least 2"):
        uncertainty_bands(key, game, 3, keep_fractions=[0.5], num_samples=1)


def test_choose_d_fallbacks():
    # No keep fraction within tolerance of v(all): min_keep_within falls back to the largest q (clipped below 1).
    far = _bands([0.1, 0.2, 0.3, 0.4, 0.5], [0.05, 0.2, 0.1, 0.02, 0.0], 0.9)
    assert choose_d(far, "min_keep_within", tolerance=0.01) == pytest.approx(1 - 1e-3)
    no_full = far._replace(keep_fractions=np.array([0.1, 0.2, 0.3, 0.4, 0.6]))
    assert choose_d(no_full, "min_keep_within", tolerance=0.01) == 0.6
    # A NaN spread (a band of one distinct value over too few samples) is not the widest.
    nan = _bands([0.1, 0.2, 0.3, 0.4, 0.5], [np.nan, 0.2, 0.3, 0.1, 0.0], 0.9)
    assert choose_d(nan, "max_std") == 0.6
    with pytest.raises(ValueError, match="no finite"):
        choose_d(_bands([0.1] * 5, [np.nan] * 5, 0.9), "max_std")
