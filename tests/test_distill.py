"""Tests of distillation: ``transfer.distillation_loss`` against the formula written out and
against torch's ``kl_div``, and ``lessons_lib.distill`` (the training loop, its batched twin and
the few-label subsets) against ``train.fit`` and against each other."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import distill, models, train
from lessons_lib.data import minibatch_indices
from lessons_lib.transfer import distillation_loss


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def logits(seed, n=7, c=5, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, c, generator=gen, dtype=torch.float64),
            scale * torch.randn(n, c, generator=gen, dtype=torch.float64),
            torch.randint(0, c, (n,), generator=gen))


def by_hand(z_s, z_t, y, T, alpha):
    """The loss with softmax and log-softmax written out, in float64."""
    def softmax(z):
        e = torch.exp(z - z.max(1, keepdim=True).values)
        return e / e.sum(1, keepdim=True)

    p, q = softmax(z_t / T), softmax(z_s / T)
    kl = (p * (torch.log(p) - torch.log(q))).sum(1).mean()
    ce = -torch.log(softmax(z_s)[torch.arange(len(y)), y]).mean()
    return alpha * T**2 * kl + (1 - alpha) * ce


@pytest.mark.parametrize("seed", range(5))
def test_loss_equals_the_formula_written_out(seed):
    """Catches a wrong sign, a missing T², a KL taken the wrong way round or the temperature
    applied to the hard term: random logits, temperatures and weights."""
    z_s, z_t, y = logits(seed)
    rng = np.random.default_rng(seed)
    T, alpha = float(rng.uniform(0.5, 10)), float(rng.uniform(0, 1))
    got = distillation_loss(z_s, z_t, y, temperature=T, alpha=alpha)
    assert got.item() == pytest.approx(by_hand(z_s, z_t, y, T, alpha).item(), rel=1e-10)


@pytest.mark.parametrize("T, alpha", [(1.0, 1.0), (4.0, 0.9), (2.5, 0.3), (20.0, 0.5)])
def test_loss_equals_torch_kl_div_plus_cross_entropy(T, alpha):
    """Catches a KL averaged over classes instead of samples ("batchmean" is per sample), or a
    disagreement with the reference implementation in torch."""
    z_s, z_t, y = logits(7, n=16, c=10)
    kl = nn.functional.kl_div(torch.log_softmax(z_s / T, 1), torch.softmax(z_t / T, 1),
                              reduction="batchmean")
    ref = alpha * kl * T**2 + (1 - alpha) * nn.functional.cross_entropy(z_s, y)
    got = distillation_loss(z_s, z_t, y, temperature=T, alpha=alpha)
    assert got.item() == pytest.approx(ref.item(), rel=1e-10)


@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_alpha_zero_is_cross_entropy(T):
    """Catches the soft term leaking in at alpha = 0 (ordinary training on the labels)."""
    z_s, z_t, y = logits(3)
    got = distillation_loss(z_s, z_t, y, temperature=T, alpha=0.0)
    assert got.item() == pytest.approx(nn.functional.cross_entropy(z_s, y).item(), rel=1e-12)


def test_gradient_reaches_the_student_only_and_has_the_right_size():
    """Catches a teacher that is not detached (its logits would be trained too) and a gradient
    of the wrong size: for alpha = 1, d loss / d z_s = T (q − p) / n with q, p the softened
    probabilities of student and teacher."""
    z_s, z_t, y = logits(11)
    z_s.requires_grad_(True)
    z_t.requires_grad_(True)
    T = 3.0
    distillation_loss(z_s, z_t, y, temperature=T, alpha=1.0).backward()
    assert z_t.grad is None
    expected = T * (torch.softmax(z_s / T, 1) - torch.softmax(z_t / T, 1)) / len(y)
    torch.testing.assert_close(z_s.grad, expected.detach())


@pytest.mark.parametrize("kwargs, name", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": -2.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"alpha": -0.1}, "alpha"),
    ({"alpha": 1.5}, "alpha"), ({"alpha": float("inf")}, "alpha"),
])
def test_loss_refuses_bad_settings(kwargs, name):
    """Catches a temperature <= 0 (division by zero) or a weight outside [0, 1] being accepted."""
    z_s, z_t, y = logits(0)
    with pytest.raises(ValueError, match=name):
        distillation_loss(z_s, z_t, y, **kwargs)


@pytest.mark.parametrize("shape_t", [(7, 4), (6, 5), (35,)])
def test_loss_refuses_logits_of_different_shapes(shape_t):
    """Catches broadcasting silently pairing the wrong rows or classes."""
    z_s, _, y = logits(0)
    with pytest.raises(ValueError, match="student_logits and teacher_logits"):
        distillation_loss(z_s, torch.zeros(shape_t, dtype=z_s.dtype), y)


def test_soft_targets_soften_with_the_temperature():
    """Catches a temperature applied the wrong way (multiplying the logits sharpens them)."""
    z = torch.tensor([4.0, 1.0, 0.0, -2.0])
    torch.testing.assert_close(distill.soft_targets(z, 1.0), torch.softmax(z, 0))
    tops = [distill.soft_targets(z, T).max().item() for T in (1, 2, 4, 8)]
    assert tops == sorted(tops, reverse=True) and tops[-1] > 0.25
    with pytest.raises(ValueError, match="temperature"):
        distill.soft_targets(z, 0)


def test_labelled_subset_draws_per_class_and_by_seed(digits):
    """Catches a subset with the wrong number of images per class, images that are not training
    images, a draw that ignores the seed, or a changed validation set."""
    few = distill.labelled_subset(digits, 3, seed=1)
    assert torch.bincount(few.y_train).tolist() == [3] * 10
    rows = {tuple(x.tolist()) for x in digits.X_train}
    assert all(tuple(x.tolist()) in rows for x in few.X_train)
    assert torch.equal(few.X_val, digits.X_val) and torch.equal(few.y_val, digits.y_val)
    again, other = (distill.labelled_subset(digits, 3, seed=s) for s in (1, 2))
    assert torch.equal(again.X_train, few.X_train) and not torch.equal(other.X_train, few.X_train)
    with pytest.raises(ValueError, match="per_class"):
        distill.labelled_subset(digits, 10_000)
    with pytest.raises(ValueError, match="seed"):
        distill.labelled_subset(digits, 3, seed=-1)


def small(digits, n=120):
    return dataclasses.replace(digits, X_train=digits.X_train[:n], y_train=digits.y_train[:n],
                               X_val=digits.X_val[:100], y_val=digits.y_val[:100])


@pytest.fixture(scope="module")
def teacher(digits):
    net = models.mlp(64, 10, width=32, seed=5)
    train.fit(net, digits, lr=0.3, steps=60, seed=5, eval_every=60)
    return net


def test_alpha_zero_equals_train_fit(digits, teacher):
    """Catches distill drawing different minibatches from train.fit, or the soft term moving the
    student at alpha = 0: the same losses, the same final weights."""
    data = small(digits)
    a, b = models.mlp(64, 10, width=16, seed=2), models.mlp(64, 10, width=16, seed=2)
    hist = distill.distill(a, teacher, data, lr=0.2, steps=25, temperature=3.0, alpha=0.0,
                           batch_size=16, seed=4, eval_every=10)
    ref = train.fit(b, data, lr=0.2, steps=25, batch_size=16, seed=4, eval_every=10)
    np.testing.assert_allclose(hist.train_loss, ref.train_loss, rtol=1e-5)
    np.testing.assert_allclose(hist.val_acc, ref.val_acc)
    assert hist.eval_steps == ref.eval_steps == [10, 20, 25]
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_first_loss_is_the_distillation_loss_of_the_first_batches(digits, teacher):
    """Catches the soft term computed on the wrong images: without a transfer set both terms use
    the labelled batch; with one, the soft term uses the transfer batch (same seed) and the hard
    term the labelled batch."""
    data, T, alpha = small(digits), 2.0, 0.7
    transfer_X = digits.X_train[200:300]
    student = models.mlp(64, 10, width=16, seed=1)
    fresh = models.mlp(64, 10, width=16, seed=1)
    idx = minibatch_indices(len(data.X_train), 16, 1, 9)[0]
    j = minibatch_indices(len(transfer_X), 20, 1, 9)[0]
    with torch.no_grad():
        plain = distillation_loss(fresh(data.X_train[idx]), teacher(data.X_train[idx]),
                                  data.y_train[idx], temperature=T, alpha=alpha).item()
        z_t = teacher(transfer_X[j])  # alpha = 1: the soft term alone (the targets are unused)
        soft = distillation_loss(fresh(transfer_X[j]), z_t, z_t.argmax(1), temperature=T,
                                 alpha=1.0).item()
        mixed = alpha * soft + (1 - alpha) * nn.functional.cross_entropy(
            fresh(data.X_train[idx]), data.y_train[idx]).item()
    h1 = distill.distill(student, teacher, data, lr=0.1, steps=1, temperature=T, alpha=alpha,
                         batch_size=16, seed=9)
    h2 = distill.distill(models.mlp(64, 10, width=16, seed=1), teacher, data, lr=0.1, steps=1,
                         temperature=T, alpha=alpha, transfer_X=transfer_X, batch_size=16,
                         transfer_batch_size=20, seed=9)
    assert h1.train_loss[0] == pytest.approx(plain, rel=1e-5)
    assert h2.train_loss[0] == pytest.approx(mixed, rel=1e-5)
    assert plain != pytest.approx(mixed, rel=1e-3)


def test_the_teacher_is_not_trained(digits, teacher):
    """Catches an optimizer or a backward pass that reaches the teacher's weights, or a teacher
    left in evaluation mode."""
    before = [p.detach().clone() for p in teacher.parameters()]
    for p in teacher.parameters():
        p.grad = None
    distill.distill(models.mlp(64, 10, width=16), teacher, small(digits), lr=0.5, steps=10,
                    transfer_X=digits.X_train[:64], batch_size=16)
    assert all(torch.equal(p, q) for p, q in zip(teacher.parameters(), before))
    assert all(p.grad is None for p in teacher.parameters()) and teacher.training


@pytest.mark.parametrize("use_transfer", [False, True])
def test_each_batched_run_equals_distill(digits, teacher, use_transfer):
    """Catches the batched loop mixing runs, giving a run another's temperature, weight, rate,
    seed or labelled set, or computing the loss differently from distillation_loss."""
    splits = [distill.labelled_subset(small(digits, 300), 6, seed=s) for s in (0, 1, 2, 0)]
    lrs, seeds = [0.05, 0.3, 0.1, 0.2], [0, 1, 2, 3]
    temps, alphas = [1.0, 4.0, 2.0, 8.0], [0.0, 0.9, 0.5, 1.0]
    transfer_X = digits.X_train[300:400] if use_transfer else None
    runs = distill.distill_mlps(teacher, splits, lrs=lrs, seeds=seeds, temperatures=temps,
                                alphas=alphas, steps=30, transfer_X=transfer_X, width=8,
                                batch_size=16, transfer_batch_size=25, eval_every=10)
    assert runs.train_loss.shape == (4, 30) and runs.eval_steps.tolist() == [10, 20, 30]
    for k in range(4):
        hist = distill.distill(models.mlp(64, 10, width=8, seed=seeds[k]), teacher, splits[k],
                               lr=lrs[k], steps=30, temperature=temps[k], alpha=alphas[k],
                               transfer_X=transfer_X, batch_size=16, transfer_batch_size=25,
                               seed=seeds[k], eval_every=10)
        np.testing.assert_allclose(runs.train_loss[k], hist.train_loss, rtol=5e-4, atol=1e-6)
        np.testing.assert_allclose(runs.val_loss[k], hist.val_loss, rtol=5e-4, atol=1e-6)
        np.testing.assert_allclose(runs.val_acc[k], hist.val_acc, atol=0.011)


def test_a_run_that_diverges_stops_alone(digits, teacher):
    """Catches one diverging run poisoning the others, or a diverged run reported as finished."""
    data = small(digits)
    runs = distill.distill_mlps(teacher, data, lrs=[0.1, 1e4], seeds=0, temperatures=2.0,
                                alphas=0.5, steps=20, eval_every=10)
    hist = distill.distill(models.mlp(64, 10, width=16), teacher, data, lr=1e4, steps=20,
                           temperature=2.0, alpha=0.5)
    assert runs.diverged.tolist() == [False, True] and hist.diverged
    assert np.isfinite(runs.final_val_loss[0]) and runs.final_val_acc[1] == 0.0
    assert np.isinf(runs.final_val_loss[1])


@pytest.mark.parametrize("kwargs, name", [
    ({"lr": -0.1}, "lr"), ({"lr": float("nan")}, "lr"), ({"temperature": 0}, "temperature"),
    ({"alpha": 2.0}, "alpha"), ({"batch_size": 10_000}, "batch_size"), ({"steps": 0}, "steps"),
    ({"transfer_X": torch.zeros(5, 3)}, "transfer_X"),
    ({"transfer_X": torch.zeros(5, 64), "transfer_batch_size": 6}, "transfer_batch_size"),
])
def test_distill_refuses_bad_input(digits, teacher, kwargs, name):
    """Catches bad settings reaching the loop, where they would show up as NaN or an index
    error far from their cause."""
    args = {"lr": 0.1, "steps": 5} | kwargs
    with pytest.raises(ValueError, match=name):
        distill.distill(models.mlp(64, 10, width=8), teacher, small(digits), **args)


@pytest.mark.parametrize("kwargs, name", [
    ({"lrs": [0.1, 0.1, 0.1]}, "lrs"), ({"alphas": [0.5, -1.0]}, r"alphas\[1\]"),
    ({"temperatures": [1.0, 0.0]}, r"temperatures\[1\]"), ({"seeds": [0, -3]}, r"seeds\[1\]"),
    ({"transfer_X": torch.zeros(4, 64)}, "transfer_batch_size"),
])
def test_distill_mlps_refuses_bad_input(digits, teacher, kwargs, name):
    """Catches per-run settings of the wrong length or range, named by the run at fault."""
    args = {"lrs": [0.1, 0.2], "seeds": [0, 1], "temperatures": 2.0, "alphas": 0.5,
            "steps": 5} | kwargs
    with pytest.raises(ValueError, match=name):
        distill.distill_mlps(teacher, [small(digits)] * 2, **args)


def test_distill_mlps_refuses_splits_of_different_shapes(digits, teacher):
    """Catches stacking labelled sets of different sizes (the runs could not be batched)."""
    with pytest.raises(ValueError, match="splits"):
        distill.distill_mlps(teacher, [small(digits, 100), small(digits, 120)], lrs=0.1,
                             seeds=0, temperatures=2.0, alphas=0.5, steps=5)
