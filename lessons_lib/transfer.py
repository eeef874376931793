r"""Transfer learning on a laptop: source and target domains made from the digits, pretrained
models cached on disk, freezing, per-layer learning rates, distillation and domain similarity.

**The domains.** scikit-learn's 1797 handwritten digits (8×8 pixels, scaled to [0, 1]) are split
once, class by class, into three disjoint pools (:func:`digit_pools`): a *source* pool to
pretrain on, a *target* pool to draw the few labelled target examples from, and a *test* pool
to measure the target accuracy on. A domain is a pool seen through a transformation
(:data:`DOMAINS`): the clean images, the same with Gaussian pixel noise, rotated by 90°, with a
fixed permutation of the pixels, with inverted intensities, or with shuffled labels. No image of
the target or test pool is ever used for pretraining.

**Pretrained models** (:func:`pretrained`) are :func:`lessons_lib.models.digit_cnn` networks
trained on a source domain with a fixed recipe and saved under ``_build/pretrained/`` (or
``$LESSONS_CACHE_DIR``), in a file named by a hash of the code that trains them and its settings:
change the recipe, the model or the domains and the model is trained again; delete the folder and
it is re-created in seconds. Every lesson of a build reads the same files.

**Fine-tuning** (:func:`fine_tune`) is :func:`lessons_lib.train.fit` with one learning rate per
layer (:func:`layer_groups`): a rate of 0 freezes a layer, the same rate everywhere is full
fine-tuning, rates that shrink towards the input are *discriminative* rates (Howard & Ruder,
2018: :func:`discriminative_rates`, η_layer = η_head / factor^depth-below-head).

**Distillation** (:func:`distillation_loss`, Hinton et al., 2015) and **domain similarity**
(:func:`proxy_a_distance`, Ben-David et al., 2007; :func:`linear_cka`, Kornblith et al., 2019)
are written out as formulas in their docstrings.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import (check_choice, check_int, check_learning_rate, check_real,
                                 check_seed)
from lessons_lib.data import Split
from lessons_lib.models import digit_cnn
from lessons_lib.train import History, fit

#: The layers of :func:`lessons_lib.models.digit_cnn` that hold weights, input side first.
LAYERS = ("conv1", "conv2", "head")

# ---------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pools:
    """The digits split into three disjoint pools (float32 images in [0, 1], int64 labels)."""

    source_X: torch.Tensor
    source_y: torch.Tensor
    target_X: torch.Tensor
    target_y: torch.Tensor
    test_X: torch.Tensor
    test_y: torch.Tensor


_POOLS: dict = {}


def digit_pools(source_per_class: int = 60, target_per_class: int = 50) -> Pools:
    """scikit-learn's digits, split class by class (a fixed shuffle, seed 0): the first
    ``source_per_class`` images of each class to the source pool, the next ``target_per_class``
    to the target pool, the rest (about 70 per class) to the test pool."""
    source_per_class = check_int("source_per_class", source_per_class)
    target_per_class = check_int("target_per_class", target_per_class)
    key = (source_per_class, target_per_class)
    if key not in _POOLS:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        if source_per_class + target_per_class >= np.bincount(y).min():
            raise ValueError("source_per_class + target_per_class must leave test images in "
                             f"every class (the smallest class has {np.bincount(y).min()}), got "
                             f"{source_per_class} + {target_per_class}")
        order = np.random.default_rng(0).permutation(len(y))
        parts: dict[str, list[int]] = {"source": [], "target": [], "test": []}
        for c in range(10):
            idx = order[y[order] == c]
            parts["source"] += idx[:source_per_class].tolist()
            parts["target"] += idx[source_per_class:source_per_class + target_per_class].tolist()
            parts["test"] += idx[source_per_class + target_per_class:].tolist()
        as_x = lambda i: torch.as_tensor(X[np.sort(i)] / 16.0, dtype=torch.float32)  # noqa: E731
        as_y = lambda i: torch.as_tensor(y[np.sort(i)], dtype=torch.int64)  # noqa: E731
        _POOLS[key] = Pools(as_x(parts["source"]), as_y(parts["source"]), as_x(parts["target"]),
                            as_y(parts["target"]), as_x(parts["test"]), as_y(parts["test"]))
    return _POOLS[key]


def add_noise(X: torch.Tensor, sigma: float = 0.25, seed: int = 0) -> torch.Tensor:
    """Each pixel plus Gaussian noise of standard deviation ``sigma`` (one fixed draw per seed)."""
    sigma = check_real("sigma", sigma, low=0)
    gen = torch.Generator().manual_seed(check_seed("seed", seed))
    return X + sigma * torch.randn(X.shape, generator=gen)


def noise_per_image(X: torch.Tensor, sigma: float = 0.25) -> torch.Tensor:
    """Each image plus its own Gaussian noise of standard deviation ``sigma``, drawn from a
    generator seeded by the image's pixels: the same image always gets the same noise, different
    images get independent noise, whichever pool or batch they are in (so no two pools share a
    noise field)."""
    import zlib

    sigma = check_real("sigma", sigma, low=0)
    rows = [x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(
        zlib.crc32(x.numpy().tobytes()))) for x in X]
    return torch.stack(rows) if rows else X.clone()


def rotate90(X: torch.Tensor) -> torch.Tensor:
    """Every 8×8 image rotated by 90° (counter-clockwise)."""
    return torch.rot90(X.reshape(-1, 8, 8), 1, dims=(1, 2)).reshape(-1, 64)


def permute_pixels(X: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The 64 pixels of every image shuffled by one fixed permutation: the same information,
    but no longer arranged as an image (neighbouring pixels are no longer neighbours)."""
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(check_seed("seed", seed)))
    return X[:, perm]


def invert(X: torch.Tensor) -> torch.Tensor:
    """Inverted intensities, 1 − x: white digits on black become black on white."""
    return 1.0 - X


#: How each domain sees a pool of images: name → (transform of the images, shuffle the labels?).
DOMAINS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
    "clean": (lambda X: X, False),
    "noisy": (lambda X: noise_per_image(X, 0.25), False),
    "rotated": (rotate90, False),
    "permuted": (lambda X: permute_pixels(X, seed=2), False),
    "inverted": (invert, False),
    "shuffled labels": (lambda X: X, True),
}


def domain_images(name: str, X: torch.Tensor) -> torch.Tensor:
    """The images ``X`` as domain ``name`` shows them (see :data:`DOMAINS`)."""
    check_choice("name", name, DOMAINS)
    return DOMAINS[name][0](X)


def source_split(name: str) -> Split:
    """The pretraining data of source domain ``name``: the source pool through the domain's
    transformation, 80 % to train on and 20 % to watch (validation); for "shuffled labels" the
    labels are a fixed random permutation of the true ones (the images carry no information
    about them)."""
    check_choice("name", name, DOMAINS)
    pools = digit_pools()
    X, y = domain_images(name, pools.source_X), pools.source_y.clone()
    if DOMAINS[name][1]:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(4))
    n_val = len(y) // 5
    val, train = order[:n_val], order[n_val:]
    return Split(f"source:{name}", X[train], y[train], X[val], y[val], "classification")


def target_split(per_class: int, *, seed: int = 0, domain: str = "noisy") -> Split:
    """A small labelled target training set and the target test set, both seen as ``domain``.

    ``per_class`` examples of each digit are drawn from the target pool (a different draw for
    each ``seed``); the validation part is the whole test pool. Seeds share the test images, so
    runs can be compared pair by pair.
    """
    pools = digit_pools()
    per_class = check_int("per_class", per_class, high=int(torch.bincount(pools.target_y).min()))
    check_choice("domain", domain, DOMAINS)
    gen = torch.Generator().manual_seed(check_seed("seed", seed))
    chosen = []
    for c in range(10):
        idx = torch.nonzero(pools.target_y == c)[:, 0]
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    chosen = torch.sort(torch.cat(chosen)).values
    X_train = domain_images(domain, pools.target_X)[chosen]
    X_test = domain_images(domain, pools.test_X)
    return Split(f"target:{domain}:{per_class}", X_train, pools.target_y[chosen], X_test,
                 pools.test_y, "classification")


# ---------------------------------------------------------------------------------------------
# Pretrained models, cached by the code that trains them
# ---------------------------------------------------------------------------------------------

#: The pretraining recipe: Adam, this rate and batch size, this many epochs over the source.
PRETRAIN = {"lr": 3e-3, "batch_size": 32, "epochs": 8, "optimizer": "adam"}

#: The channels of the two convolutions of every network of chapter 7.
CHANNELS = (4, 8)


def cache_dir() -> Path:
    """Where pretrained models are kept: ``$LESSONS_CACHE_DIR`` if set, else ``_build/pretrained``
    at the top of the repository (next to the build's other caches)."""
    env = os.environ.get("LESSONS_CACHE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "_build" / "pretrained"


def _recipe_key(source: str, seed: int, width: tuple[int, int]) -> str:
    """A hash of everything that decides the pretrained weights: the code of the model, of the
    domains and of the training loop, the recipe, the source, the seed and torch's version."""
    import sys

    from lessons_lib import data, models, optimizers, train

    # the whole source of every module involved: the domains table, the recipe's code, the model,
    # the training loop, the batches and the optimizers (a change anywhere retrains, in seconds)
    code = "".join(inspect.getsource(module) for module in (
        sys.modules[__name__], models, train, data, optimizers))
    code += repr([(name, inspect.getsource(fn) if fn.__name__ == "<lambda>" else fn.__name__, shuffle)
                  for name, (fn, shuffle) in DOMAINS.items()])
    text = repr((code, sorted(PRETRAIN.items()), source, seed, width, torch.__version__))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pretrain(source: str, *, seed: int = 0, channels: tuple[int, int] = CHANNELS
             ) -> tuple[nn.Module, History]:
    """Train a fresh :func:`lessons_lib.models.digit_cnn` (initial weights from ``seed``) on
    source domain ``source`` with the :data:`PRETRAIN` recipe. No cache: see :func:`pretrained`."""
    split = source_split(source)
    model = digit_cnn(10, channels=channels, seed=seed)
    hist = fit(model, split, lr=PRETRAIN["lr"], epochs=PRETRAIN["epochs"],
               batch_size=PRETRAIN["batch_size"], optimizer=PRETRAIN["optimizer"], seed=seed,
               eval_every="epoch")
    return model, hist


def pretrained(source: str, *, seed: int = 0, channels: tuple[int, int] = CHANNELS
               ) -> nn.Module:
    """A :func:`pretrain` model, read from :func:`cache_dir` when the same code trained it
    before, trained and saved otherwise. Returns a new model object on every call, so that
    fine-tuning one copy never changes another."""
    check_choice("source", source, DOMAINS)
    seed = check_seed("seed", seed)
    path = cache_dir() / f"{source.replace(' ', '-')}-s{seed}-{_recipe_key(source, seed, channels)}.pt"
    model = digit_cnn(10, channels=channels, seed=seed)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    trained, _ = pretrain(source, seed=seed, channels=channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(trained.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: a lesson running beside this one never reads half a file
    model.load_state_dict(trained.state_dict())
    return model


def new_head(model: nn.Module, n_out: int = 10, *, seed: int = 0) -> nn.Module:
    """Replace ``model.head`` by a freshly initialised linear layer with ``n_out`` outputs (the
    usual first step of transfer: the source's classifier does not fit the target's classes)."""
    n_out = check_int("n_out", n_out)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(check_seed("seed", seed))
    try:
        model.head = nn.Linear(model.head.in_features, n_out)
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def features(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """What the backbone makes of ``X``: the input of ``model.head`` (no gradients)."""
    with torch.no_grad():
        return model[:-1](X)


# ---------------------------------------------------------------------------------------------
# Freezing and per-layer learning rates
# ---------------------------------------------------------------------------------------------


def _layer(model: nn.Module, name: str) -> nn.Module:
    check_choice("layer", name, LAYERS)
    return getattr(model, name)


def freeze(model: nn.Module, layers=LAYERS) -> nn.Module:
    """Stop training ``layers`` (names of :data:`LAYERS`): ``requires_grad = False``."""
    for name in ([layers] if isinstance(layers, str) else layers):
        _layer(model, name).requires_grad_(False)
    return model


def unfreeze(model: nn.Module, layers=LAYERS) -> nn.Module:
    """Train ``layers`` again: ``requires_grad = True``."""
    for name in ([layers] if isinstance(layers, str) else layers):
        _layer(model, name).requires_grad_(True)
    return model


def trainable_layers(model: nn.Module) -> list[str]:
    """The layers of :data:`LAYERS` whose weights will be trained."""
    return [n for n in LAYERS if any(p.requires_grad for p in _layer(model, n).parameters())]


def layer_groups(model: nn.Module, rates: Mapping[str, float]) -> list[dict]:
    """Parameter groups for a ``torch.optim`` optimizer, one per layer with its own rate.

    ``rates``: a rate for each name of :data:`LAYERS`. A rate of 0 freezes the layer (its
    weights get ``requires_grad = False`` and no group); every other layer is unfrozen. The
    optimizer then moves the weights of each group with that group's rate, e.g. for SGD
    w_layer ← w_layer − η_layer · ∇_layer L.
    """
    if not isinstance(rates, Mapping) or set(rates) != set(LAYERS):
        raise ValueError(f"rates must give a learning rate for each of {list(LAYERS)}, got "
                         f"{dict(rates) if isinstance(rates, Mapping) else rates!r}")
    groups = []
    for name in LAYERS:
        rate = check_learning_rate(f"rates[{name!r}]", rates[name], allow_zero=True, scalar=True)
        layer = _layer(model, name)
        layer.requires_grad_(rate > 0)
        if rate > 0:
            groups.append({"params": list(layer.parameters()), "lr": rate, "name": name})
    if not groups:
        raise ValueError("rates must leave at least one layer with a rate > 0, got all zero")
    return groups


def discriminative_rates(head_lr: float, factor: float = 2.6) -> dict[str, float]:
    """Howard & Ruder's discriminative fine-tuning: each layer gets the rate of the layer above
    it divided by ``factor`` (2.6 in ULMFiT), η_head, η_head/f, η_head/f², input side last.
    ``factor = 1`` is one rate for all layers; a large factor all but freezes the backbone."""
    head_lr = check_learning_rate("head_lr", head_lr, scalar=True)
    factor = check_real("factor", factor, low=1)
    return {name: head_lr / factor ** (len(LAYERS) - 1 - i) for i, name in enumerate(LAYERS)}


OPTIMIZERS = ("sgd", "momentum", "adam")


def fine_tune(model: nn.Module, data: Split, *, rates: Mapping[str, float], steps: int,
              batch_size: int = 32, optimizer: str = "adam", seed: int = 0,
              eval_every: int = 50) -> History:
    """Train ``model`` on ``data`` with one rate per layer (:func:`layer_groups`; a rate of 0
    keeps a layer frozen) using :func:`lessons_lib.train.fit`. ``optimizer``: "sgd", "momentum"
    (SGD with momentum 0.9) or "adam". ``History.lr`` (and ``History.lrs``) is the head's rate,
    or the top unfrozen layer's if the head is frozen. ``batch_size`` larger than the training
    set (a few examples per class) is reduced to its size: every update then sees all of it."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    groups = layer_groups(model, rates)

    groups = groups[::-1]  # the head's group first: History.lrs records the first group's rate

    def make(_params, _lr):
        if optimizer == "adam":
            return torch.optim.Adam(groups)
        return torch.optim.SGD(groups, lr=groups[0]["lr"],
                               momentum=0.9 if optimizer == "momentum" else 0.0)

    return fit(model, data, lr=groups[0]["lr"], steps=steps,
               batch_size=min(batch_size, len(data.X_train)), optimizer=make, seed=seed,
               eval_every=eval_every)


def steps_to_reach(history: History, accuracy: float) -> float:
    """The first evaluated update at which the validation accuracy reached ``accuracy``
    (``inf`` if it never did)."""
    accuracy = check_real("accuracy", accuracy, low=0, high=1)
    for step, acc in zip(history.eval_steps, history.val_acc):
        if acc >= accuracy:
            return float(step)
    return math.inf


# ---------------------------------------------------------------------------------------------
# Distillation
# ---------------------------------------------------------------------------------------------


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      targets: torch.Tensor, *, temperature: float = 4.0, alpha: float = 0.9
                      ) -> torch.Tensor:
    r"""Hinton et al.'s knowledge-distillation loss, averaged over the batch:

    .. math:: \alpha\, T^2\, \mathrm{KL}\bigl(\sigma(z_t/T)\,\Vert\,\sigma(z_s/T)\bigr)
              + (1-\alpha)\,\mathrm{CE}\bigl(z_s, y\bigr),

    with σ the softmax, z_s and z_t the student's and the teacher's logits, T the
    ``temperature`` (T > 1 softens both distributions, so the small probabilities the teacher
    gives to wrong classes, its "dark knowledge", carry weight) and ``alpha`` the weight of the
    soft targets. The T² keeps the soft term's gradients the same size as T changes (they scale
    as 1/T²). ``alpha = 0`` is ordinary training on the labels.
    """
    temperature = check_real("temperature", temperature, low=0, low_open=True)
    alpha = check_real("alpha", alpha, low=0, high=1)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError("student_logits and teacher_logits must be 2-d tensors of the same shape "
                         f"(samples, classes), got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    log_p_student = torch.log_softmax(student_logits / temperature, dim=1)
    p_teacher = torch.softmax(teacher_logits.detach() / temperature, dim=1)
    kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).sum(1).mean()
    hard = nn.functional.cross_entropy(student_logits, targets)
    return alpha * temperature**2 * kl + (1 - alpha) * hard


# ---------------------------------------------------------------------------------------------
# Domain similarity
# ---------------------------------------------------------------------------------------------


def proxy_a_distance(a, b, *, seed: int = 0) -> float:
    r"""Proxy A-distance between two samples of features (Ben-David et al., 2007):
    train a classifier to tell which sample a row came from, and turn its error ε on held-out
    rows into

    .. math:: d_A = 2\,(1 - 2\varepsilon).

    Near 0 the two samples are indistinguishable (ε ≈ ½); near 2 they are perfectly separable.
    The classifier is scikit-learn's logistic regression on standardised features, trained on a
    random half of the rows of each sample (balanced) and tested on the rest; ε is clipped to
    ½, so d_A ≥ 0.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a = np.asarray(a.numpy() if isinstance(a, torch.Tensor) else a, dtype=float)
    b = np.asarray(b.numpy() if isinstance(b, torch.Tensor) else b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 4:
        raise ValueError("a and b must be 2-d arrays of features with the same number of columns "
                         f"and at least 4 rows each, got shapes {a.shape} and {b.shape}")
    n = min(len(a), len(b))
    rng = np.random.default_rng(check_seed("seed", seed))
    a, b = a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]
    half = n // 2
    X_fit = np.vstack([a[:half], b[:half]])
    y_fit = np.r_[np.zeros(half), np.ones(half)]
    X_test = np.vstack([a[half:], b[half:]])
    y_test = np.r_[np.zeros(n - half), np.ones(n - half)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    error = 1.0 - clf.fit(X_fit, y_fit).score(X_test, y_test)
    return float(2 * (1 - 2 * min(error, 0.5)))


def linear_cka(X, Y) -> float:
    r"""Linear centred kernel alignment of two representations of the same n inputs
    (Kornblith et al., 2019): with the columns of X (n × p) and Y (n × q) centred,

    .. math:: \mathrm{CKA}(X, Y) = \frac{\lVert Y^\top X \rVert_F^2}
              {\lVert X^\top X \rVert_F\,\lVert Y^\top Y \rVert_F},

    1 for representations equal up to a rotation and a scale, near 0 for unrelated ones.
    """
    X = np.asarray(X.numpy() if isinstance(X, torch.Tensor) else X, dtype=float)
    Y = np.asarray(Y.numpy() if isinstance(Y, torch.Tensor) else Y, dtype=float)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 2:
        raise ValueError("X and Y must be 2-d arrays with one row per input, the same number of "
                         f"rows (at least 2), got shapes {X.shape} and {Y.shape}")
    X, Y = X - X.mean(0), Y - Y.mean(0)
    denom = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    if denom == 0:
        raise ValueError("X and Y must not be constant (a representation with no variance)")
    return float(np.linalg.norm(Y.T @ X) ** 2 / denom)
