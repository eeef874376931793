"""Tests of lessons_lib.transfer and of the batched fine-tuning in lessons_lib.batched.

The references:

- the domains: scikit-learn's digits themselves (every pool row is a digits row / 16, with its
  label), ``torch.rot90``, a permutation drawn by hand with ``torch.randperm``, noise drawn by hand
  with ``torch.randn`` from the same generator;
- per-layer rates: one step of ``torch.optim.SGD(layer_groups(...))`` against w − η_layer·∇L
  computed with ``torch.autograd.grad`` (rates that are powers of two, so the product is exact
  and the comparison can be bit for bit), several momentum steps against a hand loop;
- ``transfer.fine_tune``: a plain torch loop with one parameter group per layer on the batches of
  ``data.minibatch_indices``;
- ``batched.fine_tune_cnns``: run k against ``transfer.fine_tune`` of the same network, data,
  rates, seed and optimizer, and (for ``unfreeze_at``) against the torch loop that zeroes the
  gradient of a layer until its update; the batched forward pass against each network's own;
- ``pretrained``: the files in a temporary ``LESSONS_CACHE_DIR`` (never the repository's
  ``_build``), with a 2-epoch recipe where the test is about caching;
- ``proxy_a_distance``: 0 for one distribution, 2 for separable ones, 2(1 − 2Φ(−δ/2)) for two
  Gaussians δ apart; ``linear_cka``: the HSIC formula with centred Gram matrices.

``distillation_loss`` has its own tests elsewhere.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.datasets import load_digits
from torch import nn

from lessons_lib import batched, data, models, train, transfer

LAYERS = ("conv1", "conv2", "head")
CHANNELS = (4, 8)
#: A 2-epoch pretraining recipe: enough for the tests about caching (about 30 updates).
FAST = {"lr": 3e-3, "batch_size": 32, "epochs": 2, "optimizer": "adam"}
F = nn.functional
#: The pool sizes per class that the lessons use (digit_pools' defaults).
_POOL_DEFAULTS = inspect.signature(transfer.digit_pools).parameters
SOURCE_PER_CLASS = _POOL_DEFAULTS["source_per_class"].default
TARGET_PER_CLASS = _POOL_DEFAULTS["target_per_class"].default


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


@pytest.fixture(scope="module")
def pools():
    return transfer.digit_pools()


@pytest.fixture(scope="module")
def raw_digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def rows(X) -> Counter:
    """The rows of a 2-d array as a multiset (rounded to 1e-6, so k/16 compares exactly)."""
    return Counter(tuple(np.round(np.asarray(r, dtype=float), 6)) for r in X)


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------------------------------
# The pools and the domains
# ---------------------------------------------------------------------------------------------


def test_pools_are_the_digits_split_into_three_disjoint_parts(pools, raw_digits):
    """Catches an image used twice (a test image also in the source pool: the transfer
    experiments would measure memory), an image lost, an image with the wrong label, or the
    scaling to [0, 1] gone: the three pools together must be exactly the 1797 digits / 16."""
    X, y = raw_digits
    parts = [(pools.source_X, pools.source_y), (pools.target_X, pools.target_y),
             (pools.test_X, pools.test_y)]
    assert sum(len(px) for px, _ in parts) == len(X) == 1797
    assert rows(torch.cat([px for px, _ in parts]).numpy() * 16) == rows(X)  # a partition
    source, target, test = (rows(px.numpy()) for px, _ in parts)
    assert not (source & target) and not (source & test) and not (target & test)
    label_of = {tuple(np.round(r / 16.0, 6)): c for r, c in zip(X, y)}  # no duplicate images
    for px, py in parts:
        assert px.dtype == torch.float32 and py.dtype == torch.int64
        assert px.shape[1] == 64 and len(px) == len(py)
        assert float(px.min()) == 0.0 and float(px.max()) == 1.0
        assert [label_of[tuple(np.round(r, 6))] for r in px.numpy().astype(float)] == py.tolist()


@pytest.mark.parametrize("sizes", [None, (60, 100), (20, 30)])
def test_pools_have_the_asked_number_of_images_per_class(sizes, raw_digits, monkeypatch):
    """Catches the per-class split going wrong (e.g. the first 60 images overall instead of 60
    of each digit): source_per_class and target_per_class images of every class (the defaults,
    and e.g. 60 and 100), the rest of each class to the test pool (17–23 for 60 + 100)."""
    _, y = raw_digits
    monkeypatch.setattr(transfer, "_POOLS", {})
    pools = transfer.digit_pools(*sizes) if sizes else transfer.digit_pools()
    n_source, n_target = sizes or (SOURCE_PER_CLASS, TARGET_PER_CLASS)
    assert torch.bincount(pools.source_y).tolist() == [n_source] * 10
    assert torch.bincount(pools.target_y).tolist() == [n_target] * 10
    assert torch.bincount(pools.test_y, minlength=10).tolist() == (
        np.bincount(y) - n_source - n_target).tolist()
    assert len(pools.source_y) + len(pools.target_y) + len(pools.test_y) == 1797
    if sizes == (60, 100):
        assert len(pools.test_y) == 197


def test_pools_are_deterministic(pools, monkeypatch):
    """Catches a split that depends on the global random state or on the cache: rebuilt from
    scratch it must give the same tensors."""
    monkeypatch.setattr(transfer, "_POOLS", {})
    torch.manual_seed(123)
    np.random.seed(123)
    again = transfer.digit_pools()
    assert again is not pools
    for name in ("source_X", "source_y", "target_X", "target_y", "test_X", "test_y"):
        assert torch.equal(getattr(again, name), getattr(pools, name)), name


@pytest.mark.parametrize("kwargs, match", [
    ({"source_per_class": 100, "target_per_class": 74},
     r"^source_per_class \+ target_per_class must leave test images in every class "
     r"\(the smallest class has 174\)"),
    ({"source_per_class": 0}, r"^source_per_class must be an integer >= 1"),
    ({"target_per_class": 2.5}, r"^target_per_class must be an integer >= 1"),
])
def test_digit_pools_refuses_bad_sizes(kwargs, match, monkeypatch):
    """Catches sizes that leave a class without test images being accepted."""
    monkeypatch.setattr(transfer, "_POOLS", {})
    with pytest.raises(ValueError, match=match):
        transfer.digit_pools(**kwargs)


def test_rotate90_is_torch_rot90_counter_clockwise():
    """Catches a rotation the wrong way round or a transposition instead of a rotation: equal to
    torch.rot90 on the 8×8 images; the top-right pixel goes to the top left, the top-left one to
    the bottom left; four rotations give the images back."""
    X = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    expected = torch.rot90(X.reshape(5, 8, 8), 1, dims=(1, 2)).reshape(5, 64)
    assert torch.equal(transfer.rotate90(X), expected)
    corner = torch.zeros(2, 64)
    corner[0, 7] = 1.0  # row 0, column 7
    corner[1, 0] = 1.0  # row 0, column 0
    turned = transfer.rotate90(corner)
    assert turned[0].nonzero().tolist() == [[0]] and turned[1].nonzero().tolist() == [[56]]
    twice = transfer.rotate90(transfer.rotate90(X))
    assert torch.equal(twice, X.reshape(5, 8, 8).flip(1, 2).reshape(5, 64))
    four = X
    for _ in range(4):
        four = transfer.rotate90(four)
    assert torch.equal(four, X)


def test_permute_pixels_is_one_fixed_permutation_per_seed():
    """Catches a permutation that is not one (pixels lost or repeated), one that differs from
    image to image, or one that is not fixed by the seed."""
    X = torch.arange(3 * 64, dtype=torch.float32).reshape(3, 64)  # row i: 64 i, ..., 64 i + 63
    out = transfer.permute_pixels(X, seed=2)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, X[:, perm])
    assert torch.equal(out[1] - 64, out[0]) and torch.equal(out[2] - 128, out[0])  # same for all
    assert torch.equal(out.sort(1).values, X)  # a permutation of every row
    assert not torch.equal(out, X)
    assert torch.equal(transfer.permute_pixels(X, seed=2), out)
    assert not torch.equal(transfer.permute_pixels(X, seed=3), out)


def test_invert_is_one_minus_x(pools):
    """Catches another inversion (e.g. −x, or 16 − x on the [0, 1] images): 1 − x, in [0, 1],
    its own inverse."""
    X = pools.source_X[:50]
    assert torch.equal(transfer.invert(X), 1.0 - X)
    assert torch.equal(transfer.invert(torch.zeros(1, 64)), torch.ones(1, 64))
    assert torch.equal(transfer.invert(transfer.invert(X)), X)
    assert float(transfer.invert(X).min()) == 0.0 and float(transfer.invert(X).max()) == 1.0


def test_add_noise_has_the_asked_std_and_is_reproducible():
    """Catches noise of the wrong size (variance sigma instead of std, say), noise that is not
    fixed by the seed, or that uses the global random state."""
    X = torch.rand(2000, 64, generator=torch.Generator().manual_seed(0))
    noisy = transfer.add_noise(X, 0.3, seed=5)
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(noisy, X + 0.3 * torch.randn(X.shape, generator=gen))
    noise = (noisy - X).double()
    assert float(noise.std()) == pytest.approx(0.3, rel=0.02)
    assert abs(float(noise.mean())) < 0.01
    torch.manual_seed(99)
    assert torch.equal(transfer.add_noise(X, 0.3, seed=5), noisy)
    assert not torch.equal(transfer.add_noise(X, 0.3, seed=6), noisy)
    assert torch.equal(transfer.add_noise(X, 0.0), X)


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": -0.1}, r"^sigma must be a finite number in \[0, inf\), got -0.1"),
    ({"sigma": float("nan")}, r"^sigma must be a finite number"),
    ({"seed": -1}, r"^seed must be an integer >= 0, got -1"),
])
def test_add_noise_refuses_bad_input(kwargs, match):
    """Catches a negative or NaN noise level being accepted."""
    with pytest.raises(ValueError, match=match):
        transfer.add_noise(torch.zeros(2, 64), **kwargs)


def test_source_split_is_the_source_pool_80_20(pools):
    """Catches the pretraining data leaking target or test images, or losing some of the
    source pool: the clean source split is the source pool, 80 % to train and 20 % to watch."""
    split = transfer.source_split("clean")
    assert split.task == "classification" and split.name == "source:clean"
    n = 10 * SOURCE_PER_CLASS
    assert (len(split.X_train), len(split.X_val)) == (n - n // 5, n // 5)
    assert rows(torch.cat([split.X_train, split.X_val]).numpy()) == rows(pools.source_X.numpy())
    both_y = torch.cat([split.y_train, split.y_val])
    assert torch.bincount(both_y).tolist() == [SOURCE_PER_CLASS] * 10


@pytest.mark.parametrize("name, transform", [
    ("rotated", lambda X: torch.rot90(X.reshape(-1, 8, 8), 1, dims=(1, 2)).reshape(-1, 64)),
    ("permuted", lambda X: X[:, torch.randperm(64, generator=torch.Generator().manual_seed(2))]),
    ("inverted", lambda X: 1.0 - X),
])
def test_source_domains_are_the_clean_split_transformed(name, transform):
    """Catches a domain showing other images, other labels or another transformation than the
    one documented in DOMAINS."""
    clean, split = transfer.source_split("clean"), transfer.source_split(name)
    assert torch.equal(split.X_train, transform(clean.X_train))
    assert torch.equal(split.X_val, transform(clean.X_val))
    assert torch.equal(split.y_train, clean.y_train) and torch.equal(split.y_val, clean.y_val)
    assert torch.equal(transfer.domain_images(name, clean.X_val), transform(clean.X_val))


def test_noisy_domain_adds_noise_of_std_025():
    """Catches the noisy domain losing its noise or changing its level: same labels, pixel noise
    of std 0.25 on the clean images, the same noise on every call."""
    clean, noisy = transfer.source_split("clean"), transfer.source_split("noisy")
    assert torch.equal(noisy.y_train, clean.y_train)
    noise = (noisy.X_train - clean.X_train).double()
    assert float(noise.std()) == pytest.approx(0.25, rel=0.03)
    assert torch.equal(transfer.source_split("noisy").X_train, noisy.X_train)


def test_shuffled_labels_keep_the_images_and_permute_the_labels():
    """Catches "shuffled labels" changing the images, changing the class counts (labels drawn
    anew instead of permuted), or not shuffling (the true labels)."""
    clean, shuffled = transfer.source_split("clean"), transfer.source_split("shuffled labels")
    assert torch.equal(shuffled.X_train, clean.X_train) and torch.equal(shuffled.X_val,
                                                                         clean.X_val)
    true_y = torch.cat([clean.y_train, clean.y_val])
    new_y = torch.cat([shuffled.y_train, shuffled.y_val])
    assert torch.equal(torch.bincount(new_y), torch.bincount(true_y))
    assert float((new_y == true_y).float().mean()) < 0.2  # about 1/10 agree by chance
    assert torch.equal(transfer.source_split("shuffled labels").y_train, shuffled.y_train)


def test_target_split_draws_k_per_class_from_the_target_pool(pools):
    """Catches a target training set with the wrong number per class, drawn from the source or
    test pool, with images paired to the wrong labels, or the same for every seed; and a
    validation part that is not the whole test pool."""
    target = {tuple(np.round(r, 6)): c for r, c in zip(pools.target_X.numpy(),
                                                     pools.target_y.tolist())}
    draws = {}
    for seed in (0, 1, 2):
        split = transfer.target_split(7, seed=seed, domain="clean")
        assert torch.bincount(split.y_train).tolist() == [7] * 10
        keys = [tuple(np.round(r, 6)) for r in split.X_train.numpy()]
        assert len(set(keys)) == 70
        assert [target[k] for k in keys] == split.y_train.tolist()  # from the target pool
        assert torch.equal(split.X_val, pools.test_X) and torch.equal(split.y_val, pools.test_y)
        draws[seed] = set(keys)
    assert draws[0] != draws[1] and draws[1] != draws[2] and draws[0] != draws[2]
    again = transfer.target_split(7, seed=1, domain="clean")
    assert set(tuple(np.round(r, 6)) for r in again.X_train.numpy()) == draws[1]


def test_target_split_shows_train_and_test_in_the_domain(pools):
    """Catches the domain being applied to the training set only (or not at all): both parts
    are the target and test pools seen through the domain, the default domain is "noisy"."""
    clean = transfer.target_split(3, seed=4, domain="clean")
    rotated = transfer.target_split(3, seed=4, domain="rotated")
    assert torch.equal(rotated.X_train, transfer.rotate90(clean.X_train))
    assert torch.equal(rotated.X_val, transfer.rotate90(pools.test_X))
    assert torch.equal(rotated.y_train, clean.y_train)
    noisy = transfer.target_split(3, seed=4)
    assert torch.equal(noisy.X_val, transfer.domain_images("noisy", pools.test_X))
    assert torch.equal(noisy.y_train, clean.y_train)
    assert float((noisy.X_train - clean.X_train).std()) == pytest.approx(0.25, rel=0.1)


@pytest.mark.parametrize("call, match", [
    (lambda: transfer.target_split(0),
     rf"^per_class must be an integer in \[1, {TARGET_PER_CLASS}\], got 0"),
    (lambda: transfer.target_split(TARGET_PER_CLASS + 1),
     rf"^per_class must be an integer in \[1, {TARGET_PER_CLASS}\], got {TARGET_PER_CLASS + 1}"),
    (lambda: transfer.target_split(5, domain="blurred"), r"^domain must be one of \["),
    (lambda: transfer.target_split(5, seed=-2), r"^seed must be an integer >= 0"),
    (lambda: transfer.source_split("blurred"), r"^name must be one of \["),
    (lambda: transfer.domain_images("Clean", torch.zeros(1, 64)), r"^name must be one of \["),
])
def test_domains_refuse_bad_input(call, match):
    """Catches an unknown domain or an impossible number per class being accepted."""
    with pytest.raises(ValueError, match=match):
        call()


def test_noisy_domain_does_not_reuse_the_pretraining_noise_on_the_test_pool(pools):
    """Catches the noisy test images carrying copies of the noise fields of the source images:
    a pretrained model could have learned them."""
    source_noise = transfer.domain_images("noisy", pools.source_X) - pools.source_X
    test_noise = transfer.domain_images("noisy", pools.test_X) - pools.test_X
    closest = torch.cdist(test_noise, source_noise).min(1).values
    assert float(closest.min()) > 0.5  # independent fields are ~0.25·√128 ≈ 2.8 apart


# ---------------------------------------------------------------------------------------------
# Pretrained models, cached on disk
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder and the fast recipe."""
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(transfer, "PRETRAIN", dict(FAST))
    return tmp_path


def count_fit_calls(monkeypatch, fail=False):
    """Wrap the training loop that pretrain uses (transfer.fit: not part of the cache key, so
    patching it does not change the file name); ``fail=True`` makes training an error."""
    calls = []
    real = transfer.fit

    def wrapped(*args, **kwargs):
        calls.append(kwargs)
        if fail:
            raise AssertionError("pretrained() trained although the file was in the cache")
        return real(*args, **kwargs)

    monkeypatch.setattr(transfer, "fit", wrapped)
    return calls


def test_pretrained_trains_once_then_reads_the_file(cache, monkeypatch):
    """Catches a cache that is never written, never read (every lesson would retrain), or read
    back wrong: the first call trains and writes one file, the second loads it without training
    and gives the same weights as pretrain() itself."""
    calls = count_fit_calls(monkeypatch)
    first = transfer.pretrained("clean", seed=0, channels=CHANNELS)
    assert len(calls) == 1 and calls[0]["epochs"] == 2
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].startswith("clean-s0-") and files[0].endswith(".pt")
    key = transfer._recipe_key("clean", 0, CHANNELS)
    assert files[0] == f"clean-s0-{key}.pt"
    mtime = (cache / files[0]).stat().st_mtime_ns

    count_fit_calls(monkeypatch, fail=True)
    second = transfer.pretrained("clean", seed=0, channels=CHANNELS)
    assert_same_state(state(first), state(second))
    assert (cache / files[0]).stat().st_mtime_ns == mtime
    assert sorted(p.name for p in cache.iterdir()) == files  # no temporary file left over
    monkeypatch.setattr(transfer, "fit", train.fit)
    reference, _ = transfer.pretrain("clean", seed=0, channels=CHANNELS)
    assert_same_state(state(reference), state(second))
    assert_same_state(state(reference),
                      torch.load(cache / files[0], weights_only=True))


def test_pretrained_returns_a_new_model_on_every_call(cache):
    """Catches pretrained() handing out one shared model (or tensors shared with the file's
    copy): fine-tuning one copy must not change another or the next call's."""
    first = transfer.pretrained("clean", channels=CHANNELS)  # trained
    kept = state(first)
    second = transfer.pretrained("clean", channels=CHANNELS)  # read
    assert first is not second
    with torch.no_grad():
        first.head.weight.add_(1.0)
        second.conv1.weight.mul_(0.0)
    third = transfer.pretrained("clean", channels=CHANNELS)
    assert_same_state(state(third), kept)
    assert not torch.equal(first.head.weight, third.head.weight)
    assert not torch.equal(second.conv1.weight, third.conv1.weight)


def test_pretrained_trains_again_when_the_recipe_changes(cache, monkeypatch):
    """Catches a cache key blind to the recipe: after PRETRAIN changes, the old file must not
    be used (another name, training again)."""
    transfer.pretrained("clean", channels=CHANNELS)
    old_key = transfer._recipe_key("clean", 0, CHANNELS)
    monkeypatch.setattr(transfer, "PRETRAIN", dict(FAST, epochs=1))
    assert transfer._recipe_key("clean", 0, CHANNELS) != old_key
    calls = count_fit_calls(monkeypatch)
    transfer.pretrained("clean", channels=CHANNELS)
    assert len(calls) == 1 and calls[0]["epochs"] == 1
    assert len(list(cache.iterdir())) == 2
    one_epoch_key = transfer._recipe_key("clean", 0, CHANNELS)
    for change in ({"lr": 1e-3}, {"batch_size": 16}, {"optimizer": "sgd"}):
        monkeypatch.setattr(transfer, "PRETRAIN", dict(FAST, **change))
        assert transfer._recipe_key("clean", 0, CHANNELS) not in (old_key, one_epoch_key)


def test_cache_key_depends_on_source_seed_and_width():
    """Catches models of different sources, seeds or widths sharing a file."""
    keys = {transfer._recipe_key(source, seed, width)
            for source in ("clean", "rotated") for seed in (0, 1)
            for width in (CHANNELS, (8, 16))}
    assert len(keys) == 8
    assert transfer._recipe_key("clean", 0, CHANNELS) == transfer._recipe_key("clean", 0,
                                                                                CHANNELS)


@pytest.mark.parametrize("changed", ["train.fit", "models.digit_cnn", "data.minibatch_indices",
                                     "transfer.pretrain", "transfer.source_split",
                                     "transfer.add_noise"])
def test_cache_key_depends_on_the_code_that_trains(changed, monkeypatch):
    """Catches a cache key that misses the code of the training loop, the model, the batches or
    the data: editing it would leave lessons on stale weights."""
    modules = {"train": train, "models": models, "data": data, "transfer": transfer}
    module, name = changed.split(".")
    target = getattr(modules[module], name)
    before = transfer._recipe_key("noisy", 0, CHANNELS)
    real = inspect.getsource
    edited = real(target) + "\n# edited"

    def getsource(obj):  # the function, or the module it lives in, as if it had been edited
        text = real(obj)
        return text.replace(real(target), edited) if obj in (target, modules[module]) else text

    monkeypatch.setattr(inspect, "getsource", getsource)
    assert transfer._recipe_key("noisy", 0, CHANNELS) != before


def test_cache_key_depends_on_the_domains(monkeypatch):
    """Catches a cache key blind to the definition of the domains."""
    before = transfer._recipe_key("noisy", 0, CHANNELS)
    monkeypatch.setitem(transfer.DOMAINS, "noisy",
                        (lambda X: transfer.add_noise(X, 0.5, seed=1), False))
    assert transfer._recipe_key("noisy", 0, CHANNELS) != before


def test_cache_dir_is_the_environment_variable_or_build(monkeypatch, tmp_path):
    """Catches LESSONS_CACHE_DIR being ignored (tests and parallel builds would write into the
    repository) or the default moving away from _build/pretrained."""
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path / "x"))
    assert transfer.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("LESSONS_CACHE_DIR")
    root = Path(inspect.getfile(transfer)).resolve().parents[1]
    assert transfer.cache_dir() == root / "_build" / "pretrained"


@pytest.mark.parametrize("kwargs, match", [
    ({"source": "blurred"}, r"^source must be one of \["),
    ({"source": "clean", "seed": -1}, r"^seed must be an integer >= 0"),
])
def test_pretrained_refuses_bad_input(kwargs, match, cache):
    """Catches an unknown source reaching the cache (a file per typo)."""
    with pytest.raises(ValueError, match=match):
        transfer.pretrained(**kwargs)
    assert not list(cache.iterdir())


def test_the_real_recipe_learns_the_digits(tmp_path, monkeypatch, pools):
    """Catches a pretraining recipe (PRETRAIN, the source split) that no longer learns: every
    transfer lesson would start from a network that knows nothing. The clean model must read
    the clean test pool well (about 0.92 measured; chance is 0.1)."""
    monkeypatch.setenv("LESSONS_CACHE_DIR", str(tmp_path))
    model = transfer.pretrained("clean")
    _, acc = train.evaluate(model, pools.test_X, pools.test_y, "classification")
    assert acc > 0.85


def test_new_head_and_features():
    """Catches new_head keeping the source classifier, drawing from the global random state, or
    features() returning something other than the input of the head."""
    model = models.digit_cnn(10, channels=CHANNELS, seed=0)
    old = model.head.weight.detach().clone()
    rng = torch.random.get_rng_state()
    transfer.new_head(model, 5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng)
    torch.manual_seed(3)
    expected = nn.Linear(128, 5)
    assert model.head.weight.shape == (5, 128) and not torch.equal(model.head.weight[:5], old[:5])
    assert torch.equal(model.head.weight, expected.weight)
    assert torch.equal(model.head.bias, expected.bias)
    X = torch.rand(6, 64, generator=torch.Generator().manual_seed(1))
    feats = transfer.features(model, X)
    assert feats.shape == (6, 128) and not feats.requires_grad
    with torch.no_grad():
        assert torch.allclose(model.head(feats), model(X), atol=1e-6)
    with pytest.raises(ValueError, match=r"^n_out must be an integer >= 1"):
        transfer.new_head(model, 0)


# ---------------------------------------------------------------------------------------------
# Freezing and per-layer rates
# ---------------------------------------------------------------------------------------------


def grads_on(model):
    return {name for name in LAYERS if all(p.requires_grad
                                           for p in getattr(model, name).parameters())}


def test_freeze_unfreeze_and_trainable_layers():
    """Catches freeze() missing a layer's bias, unfreeze() not undoing it, trainable_layers()
    reporting a frozen layer, or a single name being read as its letters."""
    model = models.digit_cnn(10, channels=CHANNELS)
    assert transfer.trainable_layers(model) == list(LAYERS)
    assert transfer.freeze(model, "conv1") is model
    assert transfer.trainable_layers(model) == ["conv2", "head"]
    assert not any(p.requires_grad for p in model.conv1.parameters())
    transfer.freeze(model)
    assert transfer.trainable_layers(model) == []
    assert models.count_parameters(model) == 0
    transfer.unfreeze(model, ["head", "conv1"])
    assert transfer.trainable_layers(model) == ["conv1", "head"]
    assert grads_on(model) == {"conv1", "head"}
    transfer.unfreeze(model)
    assert transfer.trainable_layers(model) == list(LAYERS)
    assert models.count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("call", [transfer.freeze, transfer.unfreeze])
def test_freeze_refuses_unknown_layers(call):
    """Catches a misspelled layer being ignored (the layer would silently keep training)."""
    with pytest.raises(ValueError, match=r"^layer must be one of \['conv1', 'conv2', 'head'\], "
                                         r"got 'fc'"):
        call(models.digit_cnn(channels=CHANNELS), ["conv1", "fc"])


def test_layer_groups_give_each_layer_its_rate_and_freeze_rate_zero():
    """Catches a group holding another layer's weights or rate, a zero-rate layer left trainable
    (or given a group), and a layer frozen earlier not being unfrozen by a positive rate."""
    model = models.digit_cnn(10, channels=CHANNELS)
    transfer.freeze(model, "head")
    groups = transfer.layer_groups(model, {"conv1": 0.0, "conv2": 0.01, "head": 0.1})
    assert [g["name"] for g in groups] == ["conv2", "head"]
    assert [g["lr"] for g in groups] == [0.01, 0.1]
    for g in groups:
        layer = getattr(model, g["name"])
        assert [id(p) for p in g["params"]] == [id(p) for p in layer.parameters()]
    assert grads_on(model) == {"conv2", "head"}
    assert transfer.trainable_layers(model) == ["conv2", "head"]
    groups = transfer.layer_groups(model, {"conv1": 1e-3, "conv2": 1e-3, "head": 1e-3})
    assert len(groups) == 3 and transfer.trainable_layers(model) == list(LAYERS)


@pytest.mark.parametrize("rates, match", [
    ({"conv1": 0.1, "conv2": 0.1}, r"^rates must give a learning rate for each of "
                                   r"\['conv1', 'conv2', 'head'\]"),
    ({"conv1": 0.1, "conv2": 0.1, "head": 0.1, "fc": 0.1},
     r"^rates must give a learning rate for each of"),
    ([0.1, 0.1, 0.1], r"^rates must give a learning rate for each of"),
    ({"conv1": 0.1, "conv2": 0.1, "head": -0.1}, r"^rates\['head'\] must be finite and >= 0"),
    ({"conv1": float("nan"), "conv2": 0.1, "head": 0.1},
     r"^rates\['conv1'\] must be finite and >= 0"),
    ({"conv1": 0.1, "conv2": "0.1", "head": 0.1}, r"^rates\['conv2'\] must be a number"),
    ({"conv1": 0.0, "conv2": 0.0, "head": 0.0}, r"^rates must leave at least one layer"),
])
def test_layer_groups_refuse_bad_rates(rates, match):
    """Catches a missing layer (it would silently keep the optimizer's default rate), a
    negative, NaN or text rate, or all layers frozen."""
    with pytest.raises(ValueError, match=match):
        transfer.layer_groups(models.digit_cnn(channels=CHANNELS), rates)


@pytest.fixture(scope="module")
def batch(pools):
    return pools.target_X[:24], pools.target_y[:24]


def hand_gradients(model, X, y):
    loss = F.cross_entropy(model(X), y)
    return dict(zip([n for n, _ in model.named_parameters()],
                    torch.autograd.grad(loss, list(model.parameters()))))


def test_one_sgd_step_moves_each_layer_by_its_rate_times_its_gradient(batch):
    """Catches per-layer rates that are not applied per layer (one rate for all, rates shifted
    by one layer, a frozen layer that moves): after one torch.optim.SGD step on layer_groups,
    every weight is w − η_layer·∂L/∂w, bit for bit (the rates are powers of two, so η·g is
    exact and torch's fused multiply-add rounds like the hand formula)."""
    X, y = batch
    rates = {"conv1": 2.0 ** -2, "conv2": 2.0 ** -4, "head": 2.0 ** -1}
    model = models.digit_cnn(10, channels=CHANNELS, seed=1)
    before = state(model)
    grads = hand_gradients(model, X, y)
    opt = torch.optim.SGD(transfer.layer_groups(model, rates))
    F.cross_entropy(model(X), y).backward()
    opt.step()
    for name, p in model.named_parameters():
        expected = before[name] - rates[name.split(".")[0]] * grads[name]
        assert torch.equal(p.detach(), expected), name
        assert not torch.equal(p.detach(), before[name]), name


def test_a_zero_rate_layer_does_not_move(batch):
    """Catches a frozen layer (rate 0) still being trained or still receiving gradients."""
    X, y = batch
    rates = {"conv1": 2.0 ** -3, "conv2": 0.0, "head": 2.0 ** -3}
    model = models.digit_cnn(10, channels=CHANNELS, seed=2)
    before = state(model)
    grads = hand_gradients(model, X, y)
    opt = torch.optim.SGD(transfer.layer_groups(model, rates), momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    assert model.conv2.weight.grad is None and model.conv2.bias.grad is None
    assert torch.equal(model.conv2.weight, before["conv2.weight"])
    assert torch.equal(model.conv2.bias, before["conv2.bias"])
    assert not torch.equal(model.conv1.weight, before["conv1.weight"])
    assert grads["conv2.weight"].abs().max() > 0  # it would have moved


def test_momentum_steps_follow_the_hand_loop_per_layer(pools):
    """Catches per-layer rates that are lost or mixed up over several steps with momentum:
    five steps on different minibatches against v ← μ v + g, w ← w − η_layer·v by hand, bit
    for bit."""
    rates = {"conv1": 2.0 ** -5, "conv2": 2.0 ** -3, "head": 2.0 ** -2}
    mu = 0.9
    model = models.digit_cnn(10, channels=CHANNELS, seed=3)
    hand = copy.deepcopy(model)
    opt = torch.optim.SGD(transfer.layer_groups(model, rates), momentum=mu)
    velocity = {n: torch.zeros_like(p) for n, p in hand.named_parameters()}
    for t in range(5):
        X, y = pools.target_X[16 * t:16 * (t + 1)], pools.target_y[16 * t:16 * (t + 1)]
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
        grads = hand_gradients(hand, X, y)
        with torch.no_grad():
            for name, p in hand.named_parameters():
                velocity[name] = mu * velocity[name] + grads[name] if t else grads[name].clone()
                p -= rates[name.split(".")[0]] * velocity[name]
    start = models.digit_cnn(10, channels=CHANNELS, seed=3)
    for (name, p), q, p0 in zip(model.named_parameters(), hand.parameters(), start.parameters()):
        assert torch.equal(p, q), name  # powers of two: exact, as in the one-step test
        assert float((p - p0).detach().abs().max()) > 1e-4, name


def test_discriminative_rates_divide_by_the_factor_per_layer():
    """Catches the factor applied the wrong way round (the input layer fastest) or with the
    wrong power: η_head, η_head/f, η_head/f², and one rate for all when f = 1."""
    assert transfer.discriminative_rates(1.0, 2.0) == {"conv1": 0.25, "conv2": 0.5, "head": 1.0}
    assert list(transfer.discriminative_rates(0.1)) == list(LAYERS)
    rates = transfer.discriminative_rates(0.01)
    assert rates["head"] == 0.01
    assert rates["conv2"] == pytest.approx(0.01 / 2.6)
    assert rates["conv1"] == pytest.approx(0.01 / 2.6 ** 2)
    assert transfer.discriminative_rates(3e-3, 1) == {"conv1": 3e-3, "conv2": 3e-3, "head": 3e-3}


@pytest.mark.parametrize("args, match", [
    ((0.0,), r"^head_lr must be finite and > 0"),
    ((-1e-3,), r"^head_lr must be finite and > 0"),
    ((1e-3, 0.5), r"^factor must be a finite number in \[1, inf\), got 0.5"),
    ((1e-3, float("inf")), r"^factor must be a finite number in \[1, inf\)"),
])
def test_discriminative_rates_refuse_bad_input(args, match):
    """Catches a factor below 1 (rates growing towards the input) or a zero head rate."""
    with pytest.raises(ValueError, match=match):
        transfer.discriminative_rates(*args)


# ---------------------------------------------------------------------------------------------
# Fine-tuning, one model and K together
# ---------------------------------------------------------------------------------------------

TORCH_OPTIMIZERS = {
    "sgd": lambda groups: torch.optim.SGD(groups, lr=1.0),
    "momentum": lambda groups: torch.optim.SGD(groups, lr=1.0, momentum=0.9),
    "adam": lambda groups: torch.optim.Adam(groups, lr=1.0),
}
#: Three runs per optimizer: different rates, one with a frozen layer in each of two runs.
RATES = {
    "sgd": [[0.05, 0.1, 0.2], [0.0, 0.05, 0.3], [0.1, 0.0, 0.1]],
    "momentum": [[0.01, 0.02, 0.05], [0.0, 0.01, 0.05], [0.02, 0.0, 0.02]],
    "adam": [[1e-3, 3e-3, 1e-2], [0.0, 1e-3, 3e-3], [3e-3, 0.0, 1e-2]],
}
STEPS, BATCH, EVERY = 30, 16, 10


def torch_fine_tune(model, X, y, rates, *, optimizer, seed, steps=STEPS, batch_size=BATCH,
                    unfreeze_at=(0, 0, 0)):
    """The reference: a copy of ``model`` trained by plain torch.optim with one parameter group
    per layer on the minibatches of data.minibatch_indices; a layer gets a zero gradient before
    the update ``unfreeze_at`` gives it (so it does not move and builds no history)."""
    net = copy.deepcopy(model)
    groups = [{"params": list(getattr(net, name).parameters()), "lr": float(rate)}
              for name, rate in zip(LAYERS, rates)]
    opt = TORCH_OPTIMIZERS[optimizer](groups)
    losses, norms = [], []
    for t, idx in enumerate(data.minibatch_indices(len(X), batch_size, steps, seed)):
        opt.zero_grad()
        loss = F.cross_entropy(net(X[idx]), y[idx])
        loss.backward()
        losses.append(loss.item())
        norms.append(math.sqrt(sum(float((p.grad ** 2).sum())
                                   for name, rate in zip(LAYERS, rates) if rate > 0
                                   for p in getattr(net, name).parameters())))
        for name, start in zip(LAYERS, unfreeze_at):
            if t < start:
                for p in getattr(net, name).parameters():
                    p.grad.zero_()
        opt.step()
    return net, losses, norms


@pytest.fixture(scope="module")
def target_runs():
    """Three target training sets (5 per class, seeds 0–2) and fresh heads on three networks."""
    splits = [transfer.target_split(5, seed=s) for s in range(3)]
    nets = [transfer.new_head(models.digit_cnn(10, channels=CHANNELS, seed=s), seed=10 + s)
            for s in range(3)]
    return splits, nets


@pytest.mark.parametrize("optimizer", transfer.OPTIMIZERS)
def test_fine_tune_is_the_torch_loop_with_one_group_per_layer(target_runs, optimizer):
    """Catches fine_tune using one rate for all layers, another optimizer or momentum, other
    minibatches, or training a frozen layer: its losses and final weights are those of a plain
    torch loop with one parameter group per layer; frozen weights do not change at all."""
    splits, nets = target_runs
    split, rates = splits[1], RATES[optimizer][1]  # conv1 frozen
    model = copy.deepcopy(nets[1])
    hist = transfer.fine_tune(model, split, rates=dict(zip(LAYERS, rates)), steps=STEPS,
                              batch_size=BATCH, optimizer=optimizer, seed=7, eval_every=EVERY)
    ref, losses, norms = torch_fine_tune(nets[1], split.X_train, split.y_train, rates,
                                         optimizer=optimizer, seed=7)
    assert isinstance(hist, train.History)
    np.testing.assert_allclose(hist.train_loss, losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hist.grad_norm, norms, rtol=1e-4, atol=1e-6)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-4, atol=1e-6, msg=name)
    assert torch.equal(model.conv1.weight, nets[1].conv1.weight)
    assert torch.equal(model.conv1.bias, nets[1].conv1.bias)
    assert not torch.equal(model.conv2.weight, nets[1].conv2.weight)
    assert not torch.equal(model.head.weight, nets[1].head.weight)
    assert hist.eval_steps == [10, 20, 30] and len(hist.train_loss) == STEPS
    loss, acc = train.evaluate(model, split.X_val, split.y_val, "classification")
    assert (hist.val_loss[-1], hist.val_acc[-1]) == (loss, acc)


def test_fine_tune_history_lr_is_the_head_rate(target_runs):
    """Catches History.lr reporting another layer's rate than the documented head's."""
    splits, nets = target_runs
    hist = transfer.fine_tune(copy.deepcopy(nets[0]), splits[0],
                              rates={"conv1": 0.1, "conv2": 0.01, "head": 0.001}, steps=2,
                              batch_size=BATCH, optimizer="sgd")
    assert hist.lr == 0.001


def test_fine_tune_refuses_an_unknown_optimizer(target_runs):
    """Catches a typo in the optimizer name falling back to some default."""
    splits, nets = target_runs
    with pytest.raises(ValueError, match=r"^optimizer must be one of \['adam', 'momentum', "
                                         r"'sgd'\], got 'rmsprop'"):
        transfer.fine_tune(copy.deepcopy(nets[0]), splits[0], rates=dict.fromkeys(LAYERS, 0.1),
                           steps=2, optimizer="rmsprop")


def stacked(splits):
    return (torch.stack([s.X_train for s in splits]), torch.stack([s.y_train for s in splits]),
            splits[0].X_val, splits[0].y_val)


@pytest.mark.parametrize("optimizer", transfer.OPTIMIZERS)
def test_each_batched_run_equals_fine_tune(target_runs, optimizer):
    """Catches a batched run that differs from fine-tuning its network alone: rates of another
    run or layer, another run's training set or minibatch seed, frozen layers that move, a wrong
    optimizer; the losses, accuracies and final weights of run k must be transfer.fine_tune's."""
    splits, nets = target_runs
    X, y, X_val, y_val = stacked(splits)
    seeds = [3, 4, 5]
    rates = RATES[optimizer]
    before = [state(net) for net in nets]
    grads_before = [[p.requires_grad for p in net.parameters()] for net in nets]
    hist = batched.fine_tune_cnns(nets, X, y, X_val, y_val, rates=rates, steps=STEPS,
                                  seeds=seeds, batch_size=BATCH, optimizer=optimizer,
                                  eval_every=EVERY)
    assert hist.train_loss.shape == (3, STEPS) and hist.eval_steps.tolist() == [10, 20, 30]
    assert not hist.diverged.any()
    for k in range(3):
        model = copy.deepcopy(nets[k])
        ref = transfer.fine_tune(model, splits[k], rates=dict(zip(LAYERS, rates[k])),
                                 steps=STEPS, batch_size=BATCH, optimizer=optimizer,
                                 seed=seeds[k], eval_every=EVERY)
        np.testing.assert_allclose(hist.train_loss[k], ref.train_loss, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hist.val_loss[k], ref.val_loss, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hist.val_acc[k], ref.val_acc, atol=1.5 / len(y_val))
        assert hist.final_val_acc[k] == hist.val_acc[k, -1]
        run = batched.trained_digit_cnn(hist, k)
        for (name, p), q, start in zip(run.named_parameters(), model.parameters(),
                                       nets[k].parameters()):
            # torch's convolution kernels and the batched products round differently; over 30
            # updates at rates up to 0.3 that drifts by ~1e-4, while a wrong rate, layer or
            # training set moves the weights by ~1e-2 or more
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-3, atol=1e-3, msg=name)
            layer = LAYERS.index(name.split(".")[0])
            assert torch.equal(p, start) == (rates[k][layer] == 0), name  # frozen: bit for bit
    for net, kept, flags in zip(nets, before, grads_before):  # the inputs are not changed
        assert_same_state(state(net), kept)
        assert [p.requires_grad for p in net.parameters()] == flags


def test_a_diverging_batched_run_stops_like_fine_tune(target_runs):
    """Catches divergence detected at another step than train.fit's rule, a dead run whose
    weights keep moving, or a dead run taking the others down."""
    splits, nets = target_runs
    X, y, X_val, y_val = stacked(splits[:2])
    rates = [[1e3, 1e3, 1e3], [0.05, 0.1, 0.2]]
    hist = batched.fine_tune_cnns(nets[:2], X, y, X_val, y_val, rates=rates, steps=12,
                                  seeds=[0, 1], batch_size=BATCH, optimizer="sgd", eval_every=6)
    model = copy.deepcopy(nets[0])
    ref = transfer.fine_tune(model, splits[0], rates=dict(zip(LAYERS, rates[0])), steps=12,
                             batch_size=BATCH, optimizer="sgd", seed=0, eval_every=6)
    assert ref.diverged and hist.diverged.tolist() == [True, False]
    n = len(ref.train_loss)
    np.testing.assert_allclose(hist.train_loss[0, :n], ref.train_loss, rtol=1e-4)
    assert np.isnan(hist.train_loss[0, n:]).all() and np.isnan(hist.val_loss[0]).all()
    assert hist.final_val_acc[0] == 0.0 and hist.final_val_acc[1] == hist.val_acc[1, -1]
    for p, q in zip(batched.trained_digit_cnn(hist, 0).parameters(), model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-4, atol=1e-5)
    assert not np.isnan(hist.train_loss[1]).any()


@pytest.mark.parametrize("optimizer", transfer.OPTIMIZERS)
def test_unfreeze_at_is_a_zero_gradient_until_that_update(target_runs, optimizer):
    """Catches gradual unfreezing that starts a layer one update early or late, lets a frozen
    layer build momentum or Adam history before it starts, or mixes the runs' schedules: against
    the torch loop that zeroes a layer's gradient before its update."""
    splits, nets = target_runs
    X, y, X_val, y_val = stacked(splits[:2])
    rates = [list(RATES[optimizer][0]), list(RATES[optimizer][0][::-1])]
    unfreeze_at = [[12, 5, 0], [0, 20, 3]]
    steps = 20
    hist = batched.fine_tune_cnns(nets[:2], X, y, X_val, y_val, rates=rates, steps=steps,
                                  seeds=[0, 1], batch_size=BATCH, optimizer=optimizer,
                                  unfreeze_at=unfreeze_at, eval_every=EVERY)
    for k in range(2):
        ref, losses, _ = torch_fine_tune(nets[k], X[k], y[k], rates[k], optimizer=optimizer,
                                         seed=k, steps=steps, unfreeze_at=unfreeze_at[k])
        np.testing.assert_allclose(hist.train_loss[k], losses, rtol=1e-5, atol=1e-5)
        for (name, p), q in zip(batched.trained_digit_cnn(hist, k).named_parameters(),
                                ref.parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-4, atol=1e-5, msg=name)
    run1 = batched.trained_digit_cnn(hist, 1)
    assert torch.equal(run1.conv2.weight, nets[1].conv2.weight)  # unfrozen at 20 of 20: never


def test_unfreeze_at_counts_updates(target_runs):
    """Catches an off-by-one in unfreeze_at: with unfreeze_at = u a layer is unchanged after u
    updates and has moved after u + 1."""
    splits, nets = target_runs
    X, y, X_val, y_val = stacked(splits[:1])
    u = 4
    for steps, moved in ((u, False), (u + 1, True)):
        hist = batched.fine_tune_cnns(nets[:1], X, y, X_val, y_val, rates=[[0.1, 0.1, 0.1]],
                                      steps=steps, batch_size=BATCH, optimizer="sgd",
                                      unfreeze_at=[[u, 0, 0]])
        run = batched.trained_digit_cnn(hist, 0)
        assert torch.equal(run.conv1.weight, nets[0].conv1.weight) == (not moved)
        assert not torch.equal(run.head.weight, nets[0].head.weight)


@pytest.mark.parametrize("optimizer", transfer.OPTIMIZERS)
def test_unfreezing_after_the_last_update_is_rate_zero(target_runs, optimizer):
    """Catches a layer whose unfreeze_at lies beyond the run still moving, or influencing the
    other layers differently from a frozen one: bit for bit the run with that layer's rate 0."""
    splits, nets = target_runs
    X, y, X_val, y_val = stacked([splits[0], splits[0]])
    rates = RATES[optimizer][0]
    hist = batched.fine_tune_cnns([nets[0], nets[0]], X, y, X_val, y_val,
                                  rates=[rates, [rates[0], 0.0, rates[2]]], steps=15,
                                  batch_size=BATCH, optimizer=optimizer,
                                  unfreeze_at=[[0, 15, 0], [0, 0, 0]], eval_every=5)
    for p in hist.params:
        assert torch.equal(p[0], p[1])
    np.testing.assert_array_equal(hist.train_loss[0], hist.train_loss[1])
    assert torch.equal(hist.params[2][0], nets[0].conv2.weight.detach())


def test_forward_digit_cnns_is_each_network(target_runs, pools):
    """Catches the batched forward pass differing from models.digit_cnn (pooling over the wrong
    axes, flattening channels in another order than nn.Flatten)."""
    _, nets = target_runs
    params = batched._stack_digit_cnns(nets)
    x = pools.test_X[:7].expand(3, 7, 64)
    out = batched._forward_digit_cnns(params, x)
    with torch.no_grad():
        for k, net in enumerate(nets):
            torch.testing.assert_close(out[k].detach(), net(pools.test_X[:7]), rtol=1e-5,
                                       atol=1e-5)


def test_trained_digit_cnn_reproduces_the_recorded_validation(target_runs):
    """Catches trained_digit_cnn building the network of another run or with weights in the
    wrong slots: evaluated alone it gives the run's last recorded validation loss and accuracy."""
    splits, nets = target_runs
    X, y, X_val, y_val = stacked(splits)
    hist = batched.fine_tune_cnns(nets, X, y, X_val, y_val, rates=RATES["adam"], steps=20,
                                  seeds=[0, 1, 2], batch_size=BATCH, eval_every=EVERY)
    assert len(set(np.round(hist.val_loss[:, -1], 6))) == 3  # the runs differ
    for k in range(3):
        run = batched.trained_digit_cnn(hist, k)
        assert isinstance(run, nn.Sequential) and run.head.out_features == 10
        loss, acc = train.evaluate(run, X_val, y_val, "classification")
        assert loss == pytest.approx(hist.val_loss[k, -1], rel=1e-5)
        assert acc == pytest.approx(hist.val_acc[k, -1], abs=1e-6)
    with pytest.raises(ValueError, match=r"^k must be an integer in \[0, 2\], got 3"):
        batched.trained_digit_cnn(hist, 3)


def fine_tune_call(target_runs, **changes):
    splits, nets = target_runs
    X, y, X_val, y_val = stacked(splits[:2])
    kwargs = dict(models_=nets[:2], X_train=X, y_train=y, X_val=X_val, y_val=y_val,
                  rates=[[0.1, 0.1, 0.1]] * 2, steps=3, batch_size=BATCH, optimizer="sgd")
    kwargs.update(changes)
    models_ = kwargs.pop("models_")
    return batched.fine_tune_cnns(models_, **kwargs)


@pytest.mark.parametrize("changes, match", [
    ({"rates": [[0.1, 0.1]] * 2}, r"^rates must have shape \(K=2, 3\): conv1, conv2, head of "
                                  r"each run, got \(2, 2\)"),
    ({"rates": [[0.1, 0.1, 0.1]] * 3}, r"^rates must have shape \(K=2, 3\)"),
    ({"rates": [[0.1, -0.1, 0.1]] * 2}, r"^rates must be finite and >= 0"),
    ({"X_train": torch.zeros(2, 50, 63)}, r"^X_train must be a tensor \(K=2, n, 64\) and "
                                          r"y_train \(K, n\), got \(2, 50, 63\)"),
    ({"X_train": torch.zeros(3, 50, 64)}, r"^X_train must be a tensor \(K=2, n, 64\)"),
    ({"X_train": torch.zeros(50, 64)}, r"^X_train must be a tensor \(K=2, n, 64\)"),
    ({"y_train": torch.zeros(2, 49, dtype=torch.int64)}, r"^X_train must be a tensor"),
    ({"unfreeze_at": [[0, 0, -1]] * 2}, r"^unfreeze_at must be integers >= 0 of shape \(K=2, 3\)"),
    ({"unfreeze_at": [[0, 0]] * 2}, r"^unfreeze_at must be integers >= 0 of shape \(K=2, 3\)"),
    ({"unfreeze_at": [[0, 0, 1.5]] * 2}, r"^unfreeze_at must be integers >= 0"),
    ({"batch_size": 51}, r"^batch_size must be an integer in \[1, 50\], got 51"),
    ({"optimizer": "rmsprop"}, r"^optimizer must be one of \['adam', 'momentum', 'sgd'\]"),
    ({"steps": 0}, r"^steps must be an integer >= 1, got 0"),
    ({"eval_every": 0}, r"^eval_every must be an integer >= 1, got 0"),
    ({"seeds": -1}, r"^seeds must be an integer >= 0 or one per run \(K=2\), got -1"),
    ({"seeds": 1.5}, r"^seeds must be an integer >= 0 or one per run"),
    ({"models_": []}, r"^models_ must hold at least one network"),
    ({"models_": [models.digit_cnn(channels=(4, 8)), models.digit_cnn(channels=(8, 16))]},
     r"^models must be models\.digit_cnn networks of one shape"),
])
def test_fine_tune_cnns_refuses_bad_input(target_runs, changes, match):
    """Catches a shape or setting mistake reaching the training loop (where it would fail with a
    broadcasting error, or train the wrong layers)."""
    with pytest.raises(ValueError, match=match):
        fine_tune_call(target_runs, **changes)


@pytest.mark.parametrize("diverge", [0.5, float("nan")])
def test_fine_tune_cnns_refuses_a_bad_divergence_factor(target_runs, diverge):
    """Catches a divergence factor <= 1 or NaN being accepted (silently dead or immortal runs)."""
    with pytest.raises(ValueError, match=r"^diverge must be a finite number in \(1, inf\)"):
        fine_tune_call(target_runs, diverge=diverge)


def test_fine_tune_cnns_refuses_seeds_of_the_wrong_length(target_runs):
    """Catches the wrong number of seeds giving an error that does not name the argument."""
    with pytest.raises(ValueError, match=r"^seeds must be"):
        fine_tune_call(target_runs, seeds=[0, 1, 2])


def test_fine_tune_cnns_refuses_validation_images_of_the_wrong_shape(target_runs, pools):
    """Catches validation data of the wrong shape failing deep in the loop."""
    with pytest.raises(ValueError, match=r"^X_val must"):
        fine_tune_call(target_runs, X_val=pools.test_X[:, :60])


# ---------------------------------------------------------------------------------------------
# Domain similarity and the steps to an accuracy
# ---------------------------------------------------------------------------------------------


def gaussian(n, d, seed, shift=0.0):
    X = np.random.default_rng(seed).standard_normal((n, d))
    X[:, 0] += shift
    return X


def test_proxy_a_distance_of_one_distribution_is_near_zero():
    """Catches a distance that sees a difference where there is none (e.g. a classifier tested
    on its training rows): two samples of one Gaussian are about 0 apart, never below 0."""
    for seed in range(3):
        d = transfer.proxy_a_distance(gaussian(500, 5, seed), gaussian(500, 5, 100 + seed))
        assert 0.0 <= d < 0.3


def test_proxy_a_distance_of_separable_samples_is_two():
    """Catches the formula d = 2(1 − 2ε) written another way (e.g. 1 − 2ε, or ε itself): two
    samples 5 standard deviations apart are nearly perfectly separable (d near 2), fully
    separable ones exactly 2."""
    d = transfer.proxy_a_distance(gaussian(500, 5, 0), gaussian(500, 5, 1, shift=5.0))
    assert 1.8 < d <= 2.0
    assert transfer.proxy_a_distance(gaussian(200, 3, 0), gaussian(200, 3, 1, shift=50.0)) == 2.0


def test_proxy_a_distance_matches_the_bayes_error_of_two_gaussians():
    """Catches a wrong scale of the distance between the extremes: for unit Gaussians δ = 1 apart
    the best classifier errs with ε = Φ(−δ/2), so d_A ≈ 2(1 − 2Φ(−1/2)) ≈ 0.77 (and inputs given
    as tensors give the same)."""
    expected = 2 * (1 - 2 * norm.cdf(-0.5))
    a, b = gaussian(2000, 2, 0), gaussian(2000, 2, 1, shift=1.0)
    d = transfer.proxy_a_distance(a, b)
    assert d == pytest.approx(expected, abs=0.15)
    assert transfer.proxy_a_distance(torch.as_tensor(a), torch.as_tensor(b)) == d


@pytest.mark.parametrize("a, b", [
    (np.zeros(10), np.zeros((10, 2))),
    (np.zeros((10, 2)), np.zeros((10, 3))),
    (np.zeros((3, 2)), np.zeros((10, 2))),
])
def test_proxy_a_distance_refuses_bad_shapes(a, b):
    """Catches samples of different feature counts or too few rows reaching the classifier."""
    with pytest.raises(ValueError, match=r"^a and b must be 2-d arrays of features with the "
                                         r"same number of columns and at least 4 rows each"):
        transfer.proxy_a_distance(a, b)


def cka_by_hsic(X, Y):
    """CKA from its definition: HSIC(K, L) / √(HSIC(K, K)·HSIC(L, L)) with K = XXᵀ, L = YYᵀ and
    HSIC(K, L) = tr(K H L H), H = I − 11ᵀ/n (the 1/(n−1)² factors cancel)."""
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H)

    return hsic(K, L) / math.sqrt(hsic(K, K) * hsic(L, L))


def test_linear_cka_matches_the_hsic_definition():
    """Catches the feature-space shortcut ‖YᵀX‖²_F / (‖XᵀX‖_F‖YᵀY‖_F) being written wrongly (no
    centring, a missing square, a wrong norm): it must equal the Gram-matrix definition."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)) + 3.0  # not centred: the function must centre
    Y = X[:, :3] @ rng.standard_normal((3, 4)) + 0.5 * rng.standard_normal((40, 4))
    got = transfer.linear_cka(X, Y)
    assert got == pytest.approx(cka_by_hsic(X, Y), rel=1e-10)
    assert 0.1 < got < 0.99
    assert transfer.linear_cka(Y, X) == pytest.approx(got, rel=1e-12)  # symmetric
    assert transfer.linear_cka(torch.as_tensor(X), torch.as_tensor(Y)) == pytest.approx(
        got, rel=1e-12)


def test_linear_cka_is_one_up_to_rotation_and_scale():
    """Catches a CKA that is not invariant to orthogonal transforms and isotropic scaling (the
    property that makes it a similarity of representations)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 5))
    R, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    assert transfer.linear_cka(X, 3.7 * X @ R + 2.0) == pytest.approx(1.0, abs=1e-12)
    Y = rng.standard_normal((50, 3))
    assert transfer.linear_cka(10 * X, Y) == pytest.approx(transfer.linear_cka(X, Y), rel=1e-12)


def test_linear_cka_of_independent_features_is_near_zero():
    """Catches a CKA that stays high for unrelated representations (e.g. without centring, two
    positive representations look alike)."""
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((5000, 3)), rng.standard_normal((5000, 4))
    assert transfer.linear_cka(X, Y) < 0.01
    assert transfer.linear_cka(X + 5.0, Y + 5.0) < 0.01


@pytest.mark.parametrize("X, Y, match", [
    (np.zeros(5), np.zeros((5, 2)), r"^X and Y must be 2-d arrays with one row per input"),
    (np.ones((5, 2)), np.ones((6, 2)), r"^X and Y must be 2-d arrays with one row per input"),
    (np.ones((1, 2)), np.ones((1, 2)), r"^X and Y must be 2-d arrays"),
    (np.ones((5, 2)), np.arange(10.0).reshape(5, 2), r"^X and Y must not be constant"),
])
def test_linear_cka_refuses_bad_input(X, Y, match):
    """Catches mismatched rows or a constant representation (0/0) giving NaN instead of an
    error."""
    with pytest.raises(ValueError, match=match):
        transfer.linear_cka(X, Y)


def test_steps_to_reach_reads_the_first_evaluation_at_the_accuracy():
    """Catches steps_to_reach returning the index instead of the step, the last crossing instead
    of the first, a strict > instead of >=, or a number for an accuracy never reached."""
    hist = train.History(lr=0.1, eval_steps=[10, 20, 30, 40], val_acc=[0.5, 0.8, 0.7, 0.9])
    assert transfer.steps_to_reach(hist, 0.8) == 20.0
    assert transfer.steps_to_reach(hist, 0.75) == 20.0
    assert transfer.steps_to_reach(hist, 0.85) == 40.0
    assert transfer.steps_to_reach(hist, 0.0) == 10.0
    assert transfer.steps_to_reach(hist, 0.95) == math.inf
    assert isinstance(transfer.steps_to_reach(hist, 0.8), float)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"^accuracy must be a finite number in \[0, 1\]"):
            transfer.steps_to_reach(hist, bad)
