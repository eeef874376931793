"""Six optimizers in NumPy, short enough to read in one screen each.

Every optimizer has the same two methods::

    opt = Adam(lr=1e-3)
    for t in range(100):
        params = opt.step(params, grad_f(params))   # returns NEW params; the input is not changed
    opt.reset()                                     # forget the state: momentum, averages, t

``opt.lr`` can be changed between two steps, which is how the lessons apply a schedule::

    opt.lr = schedule(t)

The state (momentum buffers, running averages, step count ``opt.t``) lives in the optimizer and
is kept when ``lr`` changes. All the operations are elementwise, so ``params`` can be an array of
any shape; ``grad`` must have the same shape. Arrays are computed in float64.

The names and defaults of the arguments are those of ``torch.optim`` (``AdaBelief``: those of the
``adabelief-pytorch`` package), and ``tests/test_optimizers.py`` checks, step by step, that each
class gives the same numbers as its PyTorch counterpart. The docstrings write the update in
short form: ``θ`` the parameters, ``g`` the gradient, ``t`` the step count (1 at the first step),
and every operation on arrays is elementwise.

Bad hyper-parameters raise ``ValueError`` naming the argument, and so does a gradient holding NaN
or inf (the sign that a run diverged), instead of silently filling the state with NaN.

This module also holds the one registry of optimizers by name (:data:`OPTIMIZERS`), used both for
the NumPy classes (:func:`make_optimizer`) and for their ``torch.optim`` counterparts
(:func:`torch_optimizer`, which :func:`lessons_lib.train.fit`, :mod:`lessons_lib.batched` and
:func:`lessons_lib.lr_finder.lr_range_test` use). Torch is imported only there.
"""

from __future__ import annotations

import inspect

import numpy as np

from lessons_lib._checks import check_bool, check_choice, check_learning_rate, check_real

__all__ = [
    "OPTIMIZERS",
    "TORCH_OPTIMIZERS",
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "AdaBelief",
    "Optimizer",
    "make_optimizer",
    "torch_optimizer",
]


# --------------------------------------------------------------------------------------------
# Small checks used by the constructors
# --------------------------------------------------------------------------------------------


def _check_betas(betas) -> tuple[float, float]:
    """Two coefficients in [0, 1): (beta1, beta2)."""
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(
            f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got {betas!r}"
        ) from None
    beta1 = check_real("betas[0]", beta1, low=0.0, high=1.0, high_open=True)
    beta2 = check_real("betas[1]", beta2, low=0.0, high=1.0, high_open=True)
    return beta1, beta2


def _non_negative(name: str, value) -> float:
    return check_real(name, value, low=0.0)


# --------------------------------------------------------------------------------------------
# The common part
# --------------------------------------------------------------------------------------------


class Optimizer:
    """What every optimizer shares: ``lr``, the step count ``t``, ``step()`` and ``reset()``.

    A subclass sets its hyper-parameters, calls ``super().__init__(lr)``, and writes two methods:
    ``reset()`` (set its buffers to ``None``) and ``_update(params, grad)`` (one step, on arrays
    already checked and copied).
    """

    #: names of the hyper-parameters shown by ``repr`` (besides ``lr``)
    hyper_parameters: tuple[str, ...] = ()

    def __init__(self, lr):
        self.lr = lr
        self.reset()

    # ``lr`` is checked every time it is set, so a schedule that returns a negative or NaN learning
    # rate fails loudly at the step where it happens. 0 is allowed (the start of a warm-up).
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = check_learning_rate("lr", value, allow_zero=True, scalar=True)

    def reset(self) -> None:
        """Forget everything learned from past gradients; the next step is step 1 again."""
        self.t = 0
        self._shape = None

    def step(self, params, grad) -> np.ndarray:
        """Return the parameters after one step. ``params`` itself is not modified."""
        params = np.array(params, dtype=float)  # np.array copies: the caller's array is left alone
        grad = np.asarray(grad, dtype=float)
        if grad.shape != params.shape:
            raise ValueError(
                f"grad must have the shape of params {params.shape}, got shape {grad.shape}"
            )
        if not np.isfinite(grad).all():
            raise ValueError(
                f"grad contains NaN or inf (at step {self.t + 1}); the run has probably diverged: "
                "try a smaller learning rate"
            )
        if self._shape is None:
            self._shape = params.shape
        elif params.shape != self._shape:
            raise ValueError(
                f"params has shape {params.shape} but the optimizer state has shape {self._shape}; "
                "call reset() before optimizing parameters of another shape"
            )
        self.t += 1
        return self._update(params, grad)

    def _update(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = [f"lr={self.lr!r}"] + [f"{n}={getattr(self, n)!r}" for n in self.hyper_parameters]
        return f"{type(self).__name__}({', '.join(args)})"


# --------------------------------------------------------------------------------------------
# The optimizers
# --------------------------------------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    Update at step t (``b`` is the momentum buffer)::

        g ← g + weight_decay · θ
        if momentum > 0:
            b ← g                                     at t = 1
            b ← momentum · b + (1 − dampening) · g    at t > 1
            g ← g + momentum · b   if nesterov   else   g ← b
        θ ← θ − lr · g

    Nesterov momentum needs ``momentum > 0`` and ``dampening = 0``.

    ``lr`` has no default, unlike ``torch.optim.SGD`` (whose default became 1e-3 in torch 2):
    that value is rarely a good rate for plain SGD, and choosing it is what this book is about.
    """

    hyper_parameters = ("momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.momentum = _non_negative("momentum", momentum)
        self.dampening = check_real("dampening", dampening, low=0.0, high=1.0)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.nesterov = check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum <= 0:
            raise ValueError(f"nesterov=True needs momentum > 0, got momentum={self.momentum!r}")
        if self.nesterov and self.dampening != 0:
            raise ValueError(f"nesterov=True needs dampening = 0, got dampening={self.dampening!r}")
        super().__init__(lr)

    def reset(self) -> None:
        super().reset()
        self.momentum_buffer = None

    def _update(self, params, grad):
        g = grad + self.weight_decay * params
        if self.momentum > 0:
            if self.momentum_buffer is None:
                self.momentum_buffer = g.copy()
            else:
                self.momentum_buffer = (
                    self.momentum * self.momentum_buffer + (1 - self.dampening) * g
                )
            if self.nesterov:
                g = g + self.momentum * self.momentum_buffer
            else:
                g = self.momentum_buffer
        return params - self.lr * g


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    Each coordinate gets its own step size, which shrinks as its squared gradients add up in
    ``s`` (starting at ``initial_accumulator_value``)::

        g ← g + weight_decay · θ
        s ← s + g²
        θ ← θ − lr / (1 + (t − 1) · lr_decay) · g / (√s + eps)
    """

    hyper_parameters = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(self, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        self.lr_decay = _non_negative("lr_decay", lr_decay)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.initial_accumulator_value = _non_negative(
            "initial_accumulator_value", initial_accumulator_value
        )
        self.eps = _non_negative("eps", eps)
        super().__init__(lr)

    def reset(self) -> None:
        super().reset()
        self.sum = None  # running sum of squared gradients, torch's state["sum"]

    def _update(self, params, grad):
        if self.sum is None:
            self.sum = np.full_like(params, self.initial_accumulator_value)
        g = grad + self.weight_decay * params
        self.sum = self.sum + g * g
        step_size = self.lr / (1 + (self.t - 1) * self.lr_decay)
        return params - step_size * g / (np.sqrt(self.sum) + self.eps)


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), as ``torch.optim.RMSprop``.

    Like Adagrad, but the squared gradients are averaged with a forgetting factor ``alpha``
    instead of summed (``v``: average of g², ``m``: average of g, ``b``: momentum buffer)::

        g ← g + weight_decay · θ
        v ← alpha · v + (1 − alpha) · g²
        d ← √v + eps                 or, if centered:
            m ← alpha · m + (1 − alpha) · g,   d ← √(v − m²) + eps
        if momentum > 0:   b ← momentum · b + g / d,   θ ← θ − lr · b
        else:              θ ← θ − lr · g / d

    All buffers start at 0. Note: no bias correction, so the first steps are large (``v`` is
    still small); Adam corrects for that.
    """

    hyper_parameters = ("alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        self.alpha = check_real("alpha", alpha, low=0.0, high=1.0, high_open=True)
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.momentum = _non_negative("momentum", momentum)
        self.centered = check_bool("centered", centered)
        super().__init__(lr)

    def reset(self) -> None:
        super().reset()
        self.square_avg = None
        self.grad_avg = None
        self.momentum_buffer = None

    def _update(self, params, grad):
        if self.square_avg is None:
            self.square_avg = np.zeros_like(params)
            self.grad_avg = np.zeros_like(params)
            self.momentum_buffer = np.zeros_like(params)
        g = grad + self.weight_decay * params
        self.square_avg = self.alpha * self.square_avg + (1 - self.alpha) * g * g
        if self.centered:
            self.grad_avg = self.alpha * self.grad_avg + (1 - self.alpha) * g
            denom = np.sqrt(self.square_avg - self.grad_avg**2) + self.eps
        else:
            denom = np.sqrt(self.square_avg) + self.eps
        if self.momentum > 0:
            self.momentum_buffer = self.momentum * self.momentum_buffer + g / denom
            return params - self.lr * self.momentum_buffer
        return params - self.lr * g / denom


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    Momentum (``m``, average of g) divided by the root of the average of g² (``v``), both
    corrected for starting at 0 (``beta1, beta2 = betas``)::

        g ← g + weight_decay · θ                 (L2 penalty added to the gradient), or
        θ ← θ · (1 − lr · weight_decay)          if decoupled_weight_decay (AdamW)
        m ← beta1 · m + (1 − beta1) · g
        v ← beta2 · v + (1 − beta2) · g²
        v_max ← max(v_max, v),  v ← v_max        (only if amsgrad)
        m̂ ← m / (1 − beta1ᵗ),   v̂ ← v / (1 − beta2ᵗ)
        θ ← θ − lr · m̂ / (√v̂ + eps)

    ``decoupled_weight_decay=True`` (keyword-only, as in ``torch.optim.Adam``) is :class:`AdamW`.
    """

    hyper_parameters = ("betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 decoupled_weight_decay=False):
        self.betas = _check_betas(betas)
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        self.decoupled_weight_decay = check_bool("decoupled_weight_decay", decoupled_weight_decay)
        super().__init__(lr)

    def reset(self) -> None:
        super().reset()
        self.exp_avg = None  # m
        self.exp_avg_sq = None  # v
        self.max_exp_avg_sq = None  # v_max (amsgrad)

    def _update(self, params, grad):
        beta1, beta2 = self.betas
        if self.exp_avg is None:
            self.exp_avg = np.zeros_like(params)
            self.exp_avg_sq = np.zeros_like(params)
            self.max_exp_avg_sq = np.zeros_like(params)
        g = grad
        if self.decoupled_weight_decay:
            params = params * (1 - self.lr * self.weight_decay)
        else:
            g = g + self.weight_decay * params
        self.exp_avg = beta1 * self.exp_avg + (1 - beta1) * g
        self.exp_avg_sq = beta2 * self.exp_avg_sq + (1 - beta2) * g * g
        v = self.exp_avg_sq
        if self.amsgrad:
            self.max_exp_avg_sq = np.maximum(self.max_exp_avg_sq, self.exp_avg_sq)
            v = self.max_exp_avg_sq
        m_hat = self.exp_avg / (1 - beta1**self.t)
        v_hat = v / (1 - beta2**self.t)
        return params - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``: decoupled weight decay.

    The weight decay shrinks θ directly instead of being added to the gradient, so it does not
    pass through the division by √v̂::

        θ ← θ · (1 − lr · weight_decay)          (AdamW: decoupled weight decay)
        m, v, m̂, v̂ as in Adam, computed from g alone
        θ ← θ − lr · m̂ / (√v̂ + eps)

    Same arguments as :class:`Adam` but ``decoupled_weight_decay`` (always True here, as in
    ``torch.optim.AdamW``); only the default ``weight_decay`` differs (0.01).
    """

    hyper_parameters = ("betas", "eps", "weight_decay", "amsgrad")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)


class AdaBelief(Optimizer):
    """AdaBelief (Zhuang et al., NeurIPS 2020), as ``AdaBelief`` of the ``adabelief-pytorch``
    package (version 0.2.1, with ``rectify=False, fixed_decay=False, amsgrad=False``).

    Adam, with v (the average of g²) replaced by s, the average of (g − m)²: how far the
    gradient is from its prediction m. A gradient close to what was expected ("belief") gives
    a large step, a surprising one a small step::

        θ ← θ · (1 − lr · weight_decay)   if weight_decouple   else   g ← g + weight_decay · θ
        m ← beta1 · m + (1 − beta1) · g
        s ← beta2 · s + (1 − beta2) · (g − m)² + eps
        m̂ ← m / (1 − beta1ᵗ),   ŝ ← s / (1 − beta2ᵗ)
        θ ← θ − lr · m̂ / (√ŝ + eps)

    Where eps goes: as in Algorithm 1 of the paper and in the package, ``eps`` is added twice:
    once inside the running average ``s`` (it is stored there and builds up to about
    ``eps / (1 − beta2)``), and once to the denominator ``√ŝ``. Because the first eps sits
    under the square root, the default 1e-16 plays roughly the part of Adam's 1e-8.
    ``weight_decouple=True`` (the package's name and default) is AdamW-style weight decay.
    """

    hyper_parameters = ("betas", "eps", "weight_decay", "weight_decouple")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0,
                 weight_decouple=True):
        self.betas = _check_betas(betas)
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.weight_decouple = check_bool("weight_decouple", weight_decouple)
        super().__init__(lr)

    def reset(self) -> None:
        super().reset()
        self.exp_avg = None  # m
        self.exp_avg_var = None  # s

    def _update(self, params, grad):
        beta1, beta2 = self.betas
        if self.exp_avg is None:
            self.exp_avg = np.zeros_like(params)
            self.exp_avg_var = np.zeros_like(params)
        g = grad
        if self.weight_decouple:
            params = params * (1 - self.lr * self.weight_decay)
        else:
            g = g + self.weight_decay * params
        self.exp_avg = beta1 * self.exp_avg + (1 - beta1) * g
        residual = g - self.exp_avg
        self.exp_avg_var = beta2 * self.exp_avg_var + (1 - beta2) * residual**2 + self.eps
        m_hat = self.exp_avg / (1 - beta1**self.t)
        s_hat = self.exp_avg_var / (1 - beta2**self.t)
        return params - self.lr * m_hat / (np.sqrt(s_hat) + self.eps)


# --------------------------------------------------------------------------------------------
# By name: the one registry, for the NumPy classes and for their torch.optim counterparts
# --------------------------------------------------------------------------------------------

#: Every optimizer by name: (class, the hyper-parameters its name sets). The names, in this order
#: (the order of the colours in chapter 4), are :data:`OPTIMIZERS`.
_REGISTRY: dict[str, tuple[type[Optimizer], dict]] = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (Adagrad, {}),
    "rmsprop": (RMSprop, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
    "adabelief": (AdaBelief, {}),
}

#: The names :func:`make_optimizer` accepts.
OPTIMIZERS = tuple(_REGISTRY)

#: The names :func:`torch_optimizer` accepts: those whose class has a namesake in ``torch.optim``
#: (all but AdaBelief, which lives in the ``adabelief-pytorch`` package).
TORCH_OPTIMIZERS = tuple(name for name, (cls, _) in _REGISTRY.items() if cls is not AdaBelief)


def make_optimizer(name: str, **hyper) -> Optimizer:
    """Build an optimizer by name, e.g. ``make_optimizer("adam", lr=0.01)``.

    ``name`` is one of :data:`OPTIMIZERS`. ``"momentum"`` is SGD with ``momentum=0.9`` and
    ``"nesterov"`` SGD with ``momentum=0.9, nesterov=True`` (unless ``hyper`` says otherwise);
    ``"sgd"``, ``"momentum"`` and ``"nesterov"`` need ``lr`` (SGD has no default rate). The
    keyword arguments are passed to the class; one it does not take raises ``ValueError``.
    """
    check_choice("name", name, OPTIMIZERS)
    cls, preset = _REGISTRY[name]
    arguments = inspect.signature(cls).parameters
    for key in hyper:
        if key not in arguments:
            raise ValueError(f"{key} is not an argument of {cls.__name__} (name={name!r}); "
                             f"the arguments are {sorted(arguments)!r}")
    if "lr" not in hyper and arguments["lr"].default is inspect.Parameter.empty:
        raise ValueError(f"lr must be given for name={name!r}, a number, finite and >= 0: "
                         f"{cls.__name__} has no default learning rate")
    return cls(**{**preset, **hyper})


def torch_optimizer(name: str, params, lr: float, **hyper):
    """The ``torch.optim`` optimizer ``name`` (one of :data:`TORCH_OPTIMIZERS`) on ``params``
    with learning rate ``lr``: the torch twin of ``make_optimizer(name, lr=lr, **hyper)``, e.g.
    ``torch_optimizer("momentum", model.parameters(), 0.1)`` is
    ``torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)``.
    """
    check_choice("optimizer", name, TORCH_OPTIMIZERS)
    lr = check_learning_rate("lr", lr, scalar=True)
    import torch

    cls, preset = _REGISTRY[name]
    return getattr(torch.optim, cls.__name__)(params, lr=lr, **{**preset, **hyper})
