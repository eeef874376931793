"""Tests of lessons_lib.models.small_cnn: shapes, seeding, the layer it claims to be, bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import models, train


def test_small_cnn_shapes_and_parameter_count():
    model = models.small_cnn(10, channels=8, image_size=8, seed=0)
    out = model(torch.randn(5, 64))
    assert out.shape == (5, 10)
    # conv: 8 filters of 3x3 + 8 biases; linear: 8 channels x 4 x 4 pixels -> 10
    assert models.count_parameters(model) == 8 * 9 + 8 + 8 * 16 * 10 + 10


def test_small_cnn_is_a_convolution_of_the_image():
    """The first layers equal torch's conv2d + relu + max-pool applied to the 8x8 image."""
    model = models.small_cnn(3, channels=4, image_size=6, seed=1)
    x = torch.randn(2, 36)
    conv, linear = model[1], model[5]
    image = x.view(2, 1, 6, 6)
    hidden = nn.functional.max_pool2d(torch.relu(nn.functional.conv2d(image, conv.weight, conv.bias,
                                                                      padding=1)), 2)
    expected = linear(hidden.flatten(1))
    torch.testing.assert_close(model(x), expected)


def test_small_cnn_seed_fixes_the_weights_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = models.small_cnn(seed=5)
    after = torch.rand(1)
    b, c = models.small_cnn(seed=5), models.small_cnn(seed=6)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[1].weight, c[1].weight)


def test_small_cnn_trains_on_the_digits(digits):
    hist = train.fit(models.small_cnn(seed=0), digits, lr=0.05, steps=60, optimizer="momentum",
                     eval_every=30)
    assert not hist.diverged and hist.val_loss[-1] < 0.5 * np.log(10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_out": 0}, r"^n_out must be an integer >= 1, got 0"),
        ({"channels": 0}, r"^channels must be an integer >= 1, got 0"),
        ({"channels": 2.5}, r"^channels must be an integer >= 1, got 2\.5"),
        ({"image_size": 7}, r"^image_size must be an even integer >= 2 \(for the 2×2 pooling\), "
                            r"got 7"),
        ({"image_size": 0}, r"^image_size must be an integer >= 2, got 0"),
    ],
)
def test_small_cnn_bad_arguments(kwargs, match):
    """Catches a CNN shape that cannot work accepted, or refused by a message that does not start
    with the argument and what it allows."""
    with pytest.raises(ValueError, match=match):
        models.small_cnn(**kwargs)
