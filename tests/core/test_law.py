import numpy as np
import pytest
from scipy.optimize import least_squares

from lightning_rectlaw.core.law import FitConvergenceWarning, FitResult, fit_law, fit_laws, law_value

SIZES = np.array([0, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 102400])


def _curve(B=800.0, dl=150.0, beta=0.55, E=1.2, sizes=SIZES):
    return law_value(sizes, B, beta, E, dl)


def test_rectified_fit_recovers_known_law():
    fit = fit_law(SIZES, _curve())
    assert isinstance(fit, FitResult) and fit.converged
    assert fit.beta == pytest.approx(0.55, rel=1e-3)
    assert fit.pre_learned_size == pytest.approx(150.0, rel=1e-2)
    assert fit.E == pytest.approx(1.2, rel=1e-3)
    assert fit.alpha == 1.0
    assert fit.rmse_log < 1e-6
    assert fit.predict(1638400) == pytest.approx(_curve(sizes=1638400), rel=1e-4)


def test_vanilla_fit_recovers_known_law_and_rejects_zero_shot_point():
    sizes = SIZES[1:]
    fit = fit_law(sizes, law_value(sizes, 50.0, 0.4, 0.9), law="vanilla")
    assert fit.pre_learned_size == 0.0
    assert fit.beta == pytest.approx(0.4, rel=1e-3)
    with pytest.raises(ValueError, match="vanilla law is infinite at size 0"):
        fit_law(SIZES, _curve(), law="vanilla")


def test_free_alpha_fits_the_exponent():
    y = law_value(SIZES, 800.0, 0.55, 1.2, 150.0, alpha=1.7)
    fit = fit_law(SIZES, y, free_alpha=True)
    assert fit.rmse_log < 1e-3
    assert fit.predict(204800) == pytest.approx(law_value(204800, 800.0, 0.55, 1.2, 150.0, 1.7), rel=1e-2)


def test_fit_matches_an_independent_least_squares_reference():
    rng = np.random.default_rng(0)
    y = _curve() * np.exp(rng.normal(0, 0.01, SIZES.size))
    fit = fit_law(SIZES, y, huber_delta=10.0)  # quadratic everywhere: plain least squares

    def resid(p):
        return np.log(law_value(SIZES, np.exp(p[0]), p[2], np.exp(p[3]), np.exp(p[1]))) - np.log(y)

    best = min(
        (
            least_squares(resid, [np.log(800), np.log(d), b, 0.0], method="lm")
            for d in (10, 150, 1000)
            for b in (0.3, 0.55, 0.9)
        ),
        key=lambda r: r.cost,
    )
    assert fit.rmse_log <= np.sqrt(2 * best.cost / SIZES.size) + 1e-9


def test_huber_loss_resists_an_outlier():
    y = _curve()
    y[5] *= 3.0  # a broken run
    robust = fit_law(SIZES, y, huber_delta=1e-3)
    assert robust.predict(1638400) == pytest.approx(_curve(sizes=1638400), rel=0.02)


def test_interval_covers_prediction_and_widens_with_extrapolation():
    rng = np.random.default_rng(1)
    y = _curve() * np.exp(rng.normal(0, 0.02, SIZES.size))
    fit = fit_law(SIZES, y)
    lo_near, hi_near = fit.interval(51200)
    lo_far, hi_far = fit.interval(1638400)
    assert lo_near < fit.predict(51200) < hi_near
    assert (hi_far / lo_far) > (hi_near / lo_near)
    lo80, hi80 = fit.interval(1638400, level=0.8)
    assert lo_far < lo80 < hi80 < hi_far


def test_interval_is_unbounded_without_residual_degrees_of_freedom():
    fit = fit_law(SIZES[:4], _curve()[:4])
    assert fit.interval(1e6) == (0.0, np.inf)


def test_interval_coverage_on_synthetic_noise():
    rng = np.random.default_rng(2)
    true = _curve(sizes=204800)
    ys = _curve()[None, :] * np.exp(rng.normal(0, 0.02, (200, SIZES.size)))
    fits = fit_laws(SIZES, ys)
    # a new run at 204800 has its own noise, like the fitted points
    new = true * np.exp(rng.normal(0, 0.02, 200))
    cover = np.mean(
        [f.interval(204800, 0.8)[0] <= n <= f.interval(204800, 0.8)[1] for f, n in zip(fits, new)]
    )
    assert 0.65 <= cover <= 0.95


def test_batched_fit_equals_one_by_one_and_ignores_missing_points():
    ys = np.stack([_curve(), _curve(B=500, dl=50, beta=0.45, E=0.8)])
    ys[1, 3] = np.nan
    batch = fit_laws(SIZES, ys)
    single = fit_law(np.delete(SIZES, 3), np.delete(ys[1], 3))
    assert batch[1].sizes.size == SIZES.size - 1
    assert batch[1].predict(1e6) == pytest.approx(single.predict(1e6), rel=1e-6)


@pytest.mark.parametrize(
    ("sizes", "losses", "match"),
    [
        ([1, 2, 3], [1.0, 2.0], "same length"),
        ([100, 200, 400], [3.0, 2.0, 1.5], "4 parameters but only 3 points"),
        ([100, 200, 400, 800, 1600], [3.0, np.nan, 2.0, 1.9, 1.8], "finite and positive"),
        ([100, 200, 400, 800, 1600], [3.0, -1.0, 2.0, 1.9, 1.8], "finite and positive"),
        ([100, -200, 400, 800, 1600], [3.0, 2.5, 2.0, 1.9, 1.8], "non-negative"),
        ([100, 200, 200, 800, 1600], [3.0, 2.5, 2.0, 1.9, 1.8], "distinct"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(sizes, losses, match):
    with pytest.raises(ValueError, match=match):
        fit_law(sizes, losses)


def test_non_convergence_is_flagged_and_warned_once():
    from lightning_rectlaw.core.law import FitConvergenceWarning

    ys = np.stack([_curve(), _curve(B=500, dl=50, beta=0.45, E=0.8)])
    with pytest.warns(FitConvergenceWarning, match="2 of 2") as record:
        fits = fit_laws(SIZES, ys, max_iter=1)
    assert len(record) == 1
    assert not any(f.converged for f in fits)
    assert all(np.isfinite(f.predict(1e6)) for f in fits)


@pytest.mark.slow
def test_law_module_imports_no_heavy_framework():
    import subprocess
    import sys

    code = (
        "import sys, lightning_rectlaw, lightning_rectlaw.cli; "
        "print(sorted(m for m in ('torch', 'lightning', 'hydra', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fit_result_reports_iterations_stop_reason_and_pinned_parameters():
    sizes = 200.0 * 2 ** np.arange(10)
    no_floor = 30.0 / (50.0 + sizes**0.5)  # E = 0: the law's floor sits at its lower bound
    fit = fit_law(sizes, no_floor)
    assert fit.converged and fit.message.startswith("converged") and fit.iterations > 0
    assert fit.at_bound == ("E",)
    assert fit._dof == sizes.size - 3  # E held fixed: B, D_l and beta are estimated
    lo, hi = fit.interval(sizes[-1] * 8, level=0.9)
    assert lo < fit.predict(sizes[-1] * 8) < hi
    with pytest.warns(FitConvergenceWarning, match="did not converge within 1 iterations"):
        stopped = fit_law(sizes, no_floor * np.exp(0.01 * np.sin(sizes)), max_iter=1)
    assert not stopped.converged and stopped.message == "stopped at the iteration limit"
    assert stopped.iterations == 1
