"""Tests of lessons_lib.sharpness (claim TL-8's measuring tool).

Reference: the explicit Hessian of a small network's loss (a 4-6-3 tanh MLP, 51 weights, on 40
samples, in float64), built by ``torch.autograd.functional.hessian`` on the loss as a function of
the flattened weights (``torch.func.functional_call``). Hessian-vector products must equal H v,
and power iteration's eigenvalue the top eigenvalue of ``torch.linalg.eigvalsh(H)``; on linear
least squares the Hessian is XᵀX·2/n in closed form.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import sharpness as S

F = nn.functional.cross_entropy


def small_problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(40, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    return model, X, y


def explicit_hessian(model, loss_fn, X, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(flat):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            k = int(np.prod(shape))
            params[name] = flat[i:i + k].reshape(shape)
            i += k
        return loss_fn(torch.func.functional_call(model, params, (X,)), y)

    return torch.autograd.functional.hessian(loss_of, flat0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hvp_equals_explicit_hessian(seed):
    model, X, y = small_problem(seed)
    H = explicit_hessian(model, F, X, y)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(10 + seed)
    for _ in range(3):
        v = torch.randn(H.shape[0], generator=gen, dtype=torch.float64)
        hv = S.hvp(lambda: F(model(X), y), params, v)
        torch.testing.assert_close(hv, H @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_eigenvalue_equals_explicit(seed):
    model, X, y = small_problem(seed)
    # train a little so that we are near a minimum, where the top eigenvalue is the largest |λ|
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        F(model(X), y).backward()
        opt.step()
    H = explicit_hessian(model, F, X, y)
    eig = torch.linalg.eigvalsh(H)
    expected = float(eig[eig.abs().argmax()])
    top = S.top_eigenvalue(model, F, X, y, iters=500, seed=seed)
    assert top.value == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(float(eig.max()))
    # the vector is the eigenvector: H v = λ v
    torch.testing.assert_close(H @ top.vector, expected * top.vector, rtol=0, atol=1e-4 * expected)
    # 20 iterations (the lessons' setting) already give it to 5 %, from below (Rayleigh quotient)
    quick = S.top_eigenvalue(model, F, X, y, iters=20, seed=seed).value
    assert 0.95 * expected < quick <= expected * (1 + 1e-12)


def test_least_squares_closed_form():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(50, 5, generator=gen, dtype=torch.float64)
    X[:, 0] *= 3.0
    y = torch.randn(50, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()

    def mse(out, target):
        return ((out.squeeze(-1) - target) ** 2).mean()

    expected = float(torch.linalg.eigvalsh(2 * X.T @ X / 50).max())
    assert S.top_eigenvalue(model, mse, X, y, iters=300).value == pytest.approx(expected, rel=1e-8)


def test_power_iteration_on_a_matrix_and_warm_start():
    A = torch.diag(torch.tensor([5.0, -2.0, 1.0, 0.5], dtype=torch.float64))
    top = S.power_iteration(lambda v: A @ v, 4, iters=100, dtype=torch.float64)
    assert top.value == pytest.approx(5.0, rel=1e-10)
    assert len(top.estimates) == 100
    warm = S.power_iteration(lambda v: A @ v, 4, iters=1, v0=torch.tensor([1.0, 0, 0, 0]),
                             dtype=torch.float64)
    assert warm.value == pytest.approx(5.0)


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["top-positive", "top-negative"])
def test_power_iteration_equals_scipy_eigsh(sign):
    """Catches power iteration settling on another eigenvalue than the one largest in absolute
    value, a wrong Rayleigh quotient (e.g. ‖Av‖, which loses the sign) or a vector that is not
    its eigenvector. Reference: scipy.sparse.linalg.eigsh (ARPACK, which="LM") on a random
    symmetric 200 × 200 matrix whose other eigenvalues lie in [−1, 1]."""
    from scipy.sparse.linalg import eigsh

    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    spectrum = rng.uniform(-1.0, 1.0, 200)
    spectrum[17] = 1.6 * sign
    A = (q * spectrum) @ q.T
    A = (A + A.T) / 2
    [value], vectors = eigsh(A, k=1, which="LM")
    assert value == pytest.approx(1.6 * sign, rel=1e-10)  # the reference finds what we built

    At = torch.from_numpy(A)
    top = S.power_iteration(lambda v: At @ v, 200, iters=150, seed=1, dtype=torch.float64)
    assert top.value == pytest.approx(value, rel=1e-10)
    assert abs(float(top.vector @ torch.from_numpy(vectors[:, 0]))) == pytest.approx(1.0, rel=1e-10)
    assert torch.linalg.vector_norm(top.vector).item() == pytest.approx(1.0, rel=1e-12)


def test_model_untouched():
    model, X, y = small_problem()
    F(model(X), y).backward()
    before = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    S.top_eigenvalue(model, F, X, y, iters=5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)


def test_full_batch_gd_matches_plain_gd():
    model, X, y = small_problem()
    twin = copy.deepcopy(model)
    run = S.full_batch_gd(model, F, X, y, lr=0.3, steps=25, every=10, iters=5)
    opt = torch.optim.SGD(twin.parameters(), lr=0.3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F(twin(X), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    np.testing.assert_allclose(run.loss, losses, rtol=1e-12)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    assert list(run.sharpness_steps) == [0, 10, 20, 25]
    assert run.threshold == pytest.approx(2 / 0.3) and not run.diverged


def test_full_batch_gd_detects_divergence():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(50, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(50, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1).double()

    def mse(out, target):
        return ((out.squeeze(-1) - target) ** 2).mean()

    run = S.full_batch_gd(model, mse, X, y, lr=5.0, steps=200, every=50, iters=3)
    assert run.diverged and len(run.loss) < 200


def test_bad_arguments():
    """Catches a bad argument accepted, or refused by a message that does not start with the
    argument and what it allows."""
    model, X, y = small_problem()
    params = list(model.parameters())
    with pytest.raises(ValueError,
                       match=r"^v must be a flat tensor of length 51 \(the number of parameters\), "
                             r"got torch\.Size\(\[50\]\)"):
        S.hvp(lambda: F(model(X), y), params, torch.zeros(50, dtype=torch.float64))
    with pytest.raises(ValueError,
                       match=r"^v must be a flat tensor of length 51 \(the number of parameters\), "
                             r"got list"):
        S.hvp(lambda: F(model(X), y), params, [0.0] * 51)
    with pytest.raises(ValueError, match="^iters must be an integer >= 1, got 0"):
        S.top_eigenvalue(model, F, X, y, iters=0)
    with pytest.raises(ValueError, match=r"^model must be a torch\.nn\.Module, got str"):
        S.top_eigenvalue("net", F, X, y)
    with pytest.raises(ValueError,
                       match=r"^loss_fn must be a function \(outputs, targets\) -> loss, got None"):
        S.top_eigenvalue(model, None, X, y)
    with pytest.raises(ValueError,
                       match=r"^v0 must be a flat tensor of length 51 or None, "
                             r"got torch\.Size\(\[3\]\)"):
        S.top_eigenvalue(model, F, X, y, v0=torch.ones(3))
    with pytest.raises(ValueError, match="^v0 must be finite and non-zero"):
        S.top_eigenvalue(model, F, X, y, v0=torch.zeros(51, dtype=torch.float64))
    with pytest.raises(ValueError, match="^dim must be an integer >= 1, got 0"):
        S.power_iteration(lambda v: v, 0)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="^model must have at least one trainable parameter"):
        S.top_eigenvalue(frozen, F, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^lr must be finite and > 0; got -0\.1"):
        S.full_batch_gd(model, F, X, y, lr=-0.1, steps=10)
    with pytest.raises(ValueError, match="^lr must be finite and > 0; got nan"):
        S.full_batch_gd(model, F, X, y, lr=float("nan"), steps=10)
    with pytest.raises(ValueError, match="^steps must be an integer >= 1, got 0"):
        S.full_batch_gd(model, F, X, y, lr=0.1, steps=0)
    with pytest.raises(ValueError, match="^every must be an integer >= 1, got 0"):
        S.full_batch_gd(model, F, X, y, lr=0.1, steps=10, every=0)
