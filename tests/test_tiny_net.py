"""Tests of chapter 2's full-batch pieces: models.tiny_net, models.half_squared_error and
data.one_hot_subset (what ch02/01 and ch02/03 used to define each for themselves)."""

import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import data, models, sharpness


def _lesson_tiny_net(seed):
    """The definition both lessons of chapter 2 carried before it moved to the library."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_tiny_net_has_the_lessons_initial_weights(seed):
    """Catches a change of initialisation (layer order, sizes, seeding) that would change every
    number the two lessons print."""
    ours, theirs = models.tiny_net(seed), _lesson_tiny_net(seed)
    assert [type(m) for m in ours] == [nn.Linear, nn.Tanh, nn.Linear]
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    assert models.count_parameters(ours) == 64 * 32 + 32 + 32 * 10 + 10 == 2410


def test_tiny_net_leaves_the_global_rng_alone_and_seeds_differ():
    """Catches tiny_net reseeding the caller's random stream, or ignoring its seed."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = models.tiny_net(4)
    assert torch.equal(torch.rand(3), expected)
    assert not torch.equal(a[0].weight, models.tiny_net(5)[0].weight)
    assert models.tiny_net(0, n_in=13, width=4, n_out=3)(torch.zeros(2, 13)).shape == (2, 3)


def test_half_squared_error_against_torch_mse():
    """Catches a wrong reduction: ½ × sum over outputs, mean over samples equals
    ½ × n_out × torch's mean squared error; and its gradient with respect to the outputs is
    (out − target) / n."""
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(7, 10, generator=gen, requires_grad=True)
    target = torch.randn(7, 10, generator=gen)
    loss = models.half_squared_error(out, target)
    torch.testing.assert_close(loss, 0.5 * 10 * nn.functional.mse_loss(out, target))
    (grad,) = torch.autograd.grad(loss, out)
    torch.testing.assert_close(grad, (out - target).detach() / 7)


def test_one_hot_subset_matches_the_split(digits):
    """Catches a subset that is not the first n training images, or labels not one-hot."""
    X, Y = data.one_hot_subset(digits, 300)
    assert torch.equal(X, digits.X_train[:300]) and Y.dtype == torch.float32
    assert Y.shape == (300, 10) and torch.equal(Y.sum(1), torch.ones(300))
    assert torch.equal(Y.argmax(1), digits.y_train[:300])


def test_the_pieces_reproduce_the_edge_of_stability_run(digits):
    """Catches a drift in any of the three pieces: the full-batch run ch02/03 starts from gives
    the losses the lessons' own definitions give (same first losses to the last bit)."""
    X, Y = data.one_hot_subset(digits, 300)
    ours = sharpness.full_batch_gd(models.tiny_net(0), models.half_squared_error, X, Y, lr=0.5,
                                   steps=20, every=20, iters=2)
    Y_ref = nn.functional.one_hot(digits.y_train[:300], 10).float()
    ref = sharpness.full_batch_gd(_lesson_tiny_net(0),
                                  lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean(),
                                  digits.X_train[:300], Y_ref, lr=0.5, steps=20, every=20, iters=2)
    np.testing.assert_array_equal(ours.loss, ref.loss)
    np.testing.assert_array_equal(ours.sharpness, ref.sharpness)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda d: models.tiny_net(-1), r"^seed must be"),
        (lambda d: models.tiny_net(0, width=0), r"^width must be an integer >= 1, got 0"),
        (lambda d: models.half_squared_error(torch.zeros(3, 2), torch.zeros(3, 3)),
         r"^out and target must be 2-d tensors of the same shape"),
        (lambda d: models.half_squared_error(np.zeros((3, 2)), torch.zeros(3, 2)),
         r"^out and target must be torch tensors"),
        (lambda d: data.one_hot_subset(d, 0), r"^n must be an integer in \[1, 1258\], got 0"),
        (lambda d: data.one_hot_subset(d, 10_000),
         r"^n must be an integer in \[1, 1258\], got 10000"),
    ],
)
def test_bad_input_is_named(digits, call, match):
    """Catches bad input accepted silently, or refused by a message that does not name the
    argument."""
    with pytest.raises(ValueError, match=match):
        call(digits)
