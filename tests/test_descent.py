"""Gradient descent, vectorised over learning rates, against the closed form and torch.optim.SGD."""

import numpy as np
import pytest
import torch

from lessons_lib import descent, landscapes


def test_quadratic_closed_form_for_many_learning_rates():
    bowl = landscapes.quadratic([0.5, 2.0, 10.0])
    lrs = np.array([0.01, 0.1, 0.19])
    path = descent.gradient_descent(bowl, [1.0, -2.0, 3.0], lrs, steps=25)
    factors = 1 - np.outer(lrs, bowl.curvatures)  # (k, dim)
    expected = factors[None] ** np.arange(26)[:, None, None] * np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(path.w, expected, rtol=1e-12, atol=1e-14)
    assert path.w.shape == (26, 3, 3) and path.loss.shape == (26, 3)
    assert not path.diverged.any()


def test_matches_torch_sgd_on_rosenbrock():
    surface = landscapes.rosenbrock()
    lr, w0 = 1e-3, np.array([-1.5, 2.0])
    path = descent.gradient_descent(surface, w0, lr, steps=200)
    w = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    for t in range(200):
        opt.zero_grad()
        surface.loss(w).backward()
        opt.step()
        np.testing.assert_allclose(path.w[t + 1, 0], w.detach().numpy(), rtol=1e-10)


def test_divergence_is_flagged_and_stopped_not_nan_poisoned():
    bowl = landscapes.parabola(1.0)
    path = descent.gradient_descent(bowl, [1.0], [0.5, 2.5], steps=100)
    assert path.diverged.tolist() == [False, True]
    assert np.isfinite(path.loss[:, 0]).all()
    assert np.isinf(path.loss[-1, 1])  # inf after the blow-up, never NaN
    assert not np.isnan(path.loss).any()


def test_threshold_is_two_over_lambda_max():
    bowl = landscapes.quadratic([1.0, 4.0])
    assert descent.gd_threshold(bowl) == 0.5
    path = descent.gradient_descent(bowl, [1.0, 1.0], [0.499, 0.501], steps=5000)
    assert path.diverged.tolist() == [False, True]
    with pytest.raises(ValueError, match="landscape"):
        descent.gd_threshold(landscapes.rosenbrock())


def test_step_length_is_lr_times_gradient_norm():
    path = descent.gradient_descent(landscapes.valley(), [-4.0, 1.5], [0.01, 0.05], steps=30)
    np.testing.assert_allclose(path.step_length, path.lrs * path.grad_norm[:-1], rtol=1e-12)


def test_steps_to_target():
    path = descent.gradient_descent(landscapes.parabola(1.0), [1.0], [0.5, 1e-4], steps=50)
    steps = path.steps_to(0.5 * 0.25**2 * 1.0001)
    assert steps[0] == 2 and np.isinf(steps[1])


def test_noise_is_seeded():
    bowl = landscapes.valley()
    a = descent.gradient_descent(bowl, [1.0, 1.0], 0.01, steps=20, noise=0.5, seed=3)
    b = descent.gradient_descent(bowl, [1.0, 1.0], 0.01, steps=20, noise=0.5, seed=3)
    c = descent.gradient_descent(bowl, [1.0, 1.0], 0.01, steps=20, noise=0.5, seed=4)
    assert np.array_equal(a.w, b.w) and not np.array_equal(a.w, c.w)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -0.1}, "lr must be finite and > 0"),
        ({"lr": 0.0}, "lr must be finite and > 0"),
        ({"lr": np.nan}, "lr"),
        ({"lr": np.inf}, "lr"),
        ({"lr": [0.1, -1.0]}, "lr"),
        ({"lr": []}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": 2.5}, "steps"),
        ({"w0": [1.0, 2.0, 3.0]}, "w0"),
        ({"w0": [np.nan, 1.0]}, "w0"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, match):
    args = {"w0": [1.0, 1.0], "lr": 0.1, "steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        descent.gradient_descent(landscapes.valley(), **args)
