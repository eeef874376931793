"""Every landscape's hand-written gradient equals torch.autograd's gradient of the same loss."""

import numpy as np
import pytest
import torch

from lessons_lib import landscapes

SURFACES = [
    landscapes.parabola(2.5),
    landscapes.valley(1.0, 20.0),
    landscapes.quadratic([0.5, 2.0, 10.0]),
    landscapes.rosenbrock(),
    landscapes.rosenbrock(a=0.5, b=10.0),
    landscapes.saddle(),
    landscapes.saddle(up=2.0, down=0.5),
    landscapes.multi_well(dim=1),
    landscapes.multi_well(dim=3, ripple=0.5, frequency=2.0),
]


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_gradient_matches_autograd(surface):
    rng = np.random.default_rng(0)
    w = rng.uniform(-3, 3, size=(16, surface.dim))  # a batch of points
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    surface.loss(wt).sum().backward()
    np.testing.assert_allclose(surface.grad(w), wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    # the NumPy loss and the torch loss are the same formula
    np.testing.assert_allclose(surface.loss(w), surface.loss(wt).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_minimum_is_a_stationary_point_with_lowest_loss(surface):
    assert np.allclose(surface.grad(surface.minimum), 0, atol=1e-12)
    rng = np.random.default_rng(1)
    others = rng.uniform(-3, 3, size=(200, surface.dim))
    assert (surface.loss(others) >= surface.loss(surface.minimum) - 1e-12).all()


def test_multi_well_has_local_minima():
    surface = landscapes.multi_well(dim=1)
    grid = np.linspace(-6, 6, 4001)[:, None]
    loss = surface.loss(grid)
    local_minima = np.flatnonzero((loss[1:-1] < loss[:-2]) & (loss[1:-1] < loss[2:]))
    assert len(local_minima) >= 3


def test_saddle_is_a_saddle_between_two_minima():
    surface = landscapes.saddle(up=2.0, down=0.5)
    origin = np.zeros(2)
    assert np.allclose(surface.grad(origin), 0)
    assert surface.loss(origin) == pytest.approx(0.5**2 / 4)
    # Hessian at the origin by autograd: diag(up, -down)
    hessian = torch.autograd.functional.hessian(
        lambda w: surface.loss(w), torch.zeros(2, dtype=torch.float64))
    np.testing.assert_allclose(hessian.numpy(), np.diag([2.0, -0.5]), atol=1e-12)
    for sign in (1, -1):
        w = np.array([0.0, sign * np.sqrt(0.5)])
        assert np.allclose(surface.grad(w), 0) and surface.loss(w) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: landscapes.quadratic([1.0, -2.0]),
         r"^curvatures must be a non-empty list of numbers > 0, got \[ 1\. -2\.\]"),
        (lambda: landscapes.quadratic([]),
         r"^curvatures must be a non-empty list of numbers > 0, got \[\]"),
        (lambda: landscapes.quadratic([1.0, np.nan]),
         r"^curvatures must contain only finite numbers \(no NaN or inf\)"),
        (lambda: landscapes.parabola(0.0),
         r"^curvature must be a finite number in \(0, inf\), got 0"),
        (lambda: landscapes.valley(steep=-1.0),
         r"^steep must be a finite number in \(0, inf\), got -1"),
        (lambda: landscapes.rosenbrock(b=0.0), r"^b must be a finite number in \(0, inf\), got 0"),
        (lambda: landscapes.saddle(up=0.0), r"^up must be a finite number in \(0, inf\), got 0"),
        (lambda: landscapes.saddle(down=-1.0),
         r"^down must be a finite number in \(0, inf\), got -1"),
        (lambda: landscapes.saddle(down=np.nan),
         r"^down must be a finite number in \(0, inf\), got nan"),
        (lambda: landscapes.multi_well(dim=0), r"^dim must be an integer >= 1, got 0"),
        (lambda: landscapes.multi_well(frequency=np.inf),
         r"^frequency must be a finite number in \(0, inf\), got inf"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    """Catches a bad landscape setting accepted, or refused by a message that does not start
    with the argument and what it allows."""
    with pytest.raises(ValueError, match=match):
        make()
