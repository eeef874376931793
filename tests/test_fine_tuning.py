"""Tests of lessons_lib.fine_tuning (the arms of chapter 7's fine-tuning experiments) and of
``batched._evaluate_digit_cnns``.

The references:

- ``layer_rates``: the table (conv1, conv2, head) of each way to unfreeze, written out by hand;
- ``start``: ``models.digit_cnn`` with seed 100 + s, ``transfer.pretrained`` and
  ``transfer.new_head`` themselves;
- ``accuracy``: the share of rows whose NumPy argmax is the label;
- ``compare``: every run (arm, setting, seed) against ``transfer.fine_tune`` of that run alone on
  ``transfer.target_split(per_class, seed=s)``; the arguments it hands to
  ``batched.fine_tune_cnns`` (read by a wrapper); an arm that differs from another only where it
  cannot matter (the same arm twice, layers unfrozen after the last update);
- ``ArmResult``: hand-built curves whose best setting by mean differs from the one by maximum;
- ``_evaluate_digit_cnns``: ``_forward_digit_cnns`` and each network's own forward pass.

Pretrained models are written to a temporary ``LESSONS_CACHE_DIR`` (never the repository's
``_build``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons_lib import batched, fine_tuning, models, transfer
from lessons_lib.fine_tuning import Arm, ArmResult

LAYERS = ("conv1", "conv2", "head")
#: The rates of (conv1, conv2, head) as multiples of the head's rate, as the lessons describe them.
UNFREEZE = {"frozen": (0.0, 0.0, 1.0), "top": (0.0, 1.0, 1.0), "all": (1.0, 1.0, 1.0),
            "discriminative": (0.01, 0.1, 1.0)}
SOURCE = "clean"
#: The tiny experiment every compare test runs: 20 target images, 4 updates, 2 seeds.
PER_CLASS, STEPS, SEEDS, EVERY = 2, 4, [0, 1], 2


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A private cache folder for the pretrained models of the whole file."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LESSONS_CACHE_DIR", str(tmp_path_factory.mktemp("pretrained")))
        yield


def state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def keep(s):
    return fine_tuning.start(SOURCE, "keep", seed=s)


def new(s):
    return fine_tuning.start(SOURCE, "new", seed=s)


def scratch(s):
    return fine_tuning.start(None, seed=s)


def make_arms() -> dict[str, Arm]:
    """Arms with 2, 2, 1, 1, 1 and 2 settings: every way to start, discriminative rates, a linear
    probe, an arm whose backbone is unfrozen only after the last update, and ``keep`` twice."""
    return {
        "keep": Arm(keep, fine_tuning.layer_rates([1e-3, 1e-2], "all")),
        "new": Arm(new, fine_tuning.layer_rates([1e-2, 3e-2], "discriminative")),
        "scratch": Arm(scratch, fine_tuning.layer_rates([1e-2], "all")),
        "probe": Arm(new, fine_tuning.layer_rates([1e-2], "frozen")),
        "late": Arm(new, fine_tuning.layer_rates([1e-2], "all"), unfreeze_at=(STEPS, STEPS, 0)),
        "keep again": Arm(keep, fine_tuning.layer_rates([1e-3, 1e-2], "all")),
    }


@pytest.fixture(scope="module")
def experiment():
    """``compare`` on :func:`make_arms`, with the arms and the target splits of both seeds."""
    arms = make_arms()
    results = fine_tuning.compare(arms, PER_CLASS, seeds=SEEDS, steps=STEPS, eval_every=EVERY)
    splits = {s: transfer.target_split(PER_CLASS, seed=s) for s in SEEDS}
    return arms, results, splits


# ---------------------------------------------------------------------------------------------
# layer_rates, start, accuracy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(UNFREEZE))
def test_layer_rates_are_the_head_rate_times_the_table(how):
    """Catches the columns of a row of UNFREEZE in the wrong order (conv1 and head swapped would
    make "frozen" train conv1 only), a wrong factor, or the rates broadcast the wrong way: one
    row per head rate η, (conv1, conv2, head) = η · the table above."""
    head_rates = [1e-3, 3e-2, 0.5]
    rates = fine_tuning.layer_rates(head_rates, how)
    assert rates.shape == (3, 3)
    np.testing.assert_allclose(rates, np.outer(head_rates, UNFREEZE[how]), rtol=1e-12)
    np.testing.assert_array_equal(rates[:, 2], head_rates)  # the head always trains at η
    assert fine_tuning.UNFREEZE == UNFREEZE


def test_layer_rates_examples():
    """Catches the documented example going wrong and a single rate not giving one setting."""
    np.testing.assert_allclose(fine_tuning.layer_rates([1e-3], "discriminative"),
                               [[1e-5, 1e-4, 1e-3]], rtol=1e-12)
    np.testing.assert_array_equal(fine_tuning.layer_rates(0.1, "top"), [[0.0, 0.1, 0.1]])
    np.testing.assert_array_equal(fine_tuning.layer_rates(np.array([0.1, 0.2])),  # "all"
                                  [[0.1, 0.1, 0.1], [0.2, 0.2, 0.2]])


@pytest.mark.parametrize("args, match", [
    (([1e-3], "some"), r"^how must be one of \['all', 'discriminative', 'frozen', 'top'\], "
                       r"got 'some'"),
    (([1e-3, -1e-3], "all"), r"^head_rates must be finite and > 0"),
    (([float("nan")], "all"), r"^head_rates must be finite and > 0"),
    (([float("inf")], "top"), r"^head_rates must be finite and > 0"),
    (([0.0], "all"), r"^head_rates must be finite and > 0"),
    (([], "all"), r"^head_rates must hold at least one learning rate"),
])
def test_layer_rates_refuses_bad_input(args, match):
    """Catches a typo in ``how`` or a negative, NaN or infinite rate reaching a training run."""
    with pytest.raises(ValueError, match=match):
        fine_tuning.layer_rates(*args)


@pytest.mark.parametrize("s", [0, 3])
def test_start_from_scratch_is_a_fresh_digit_cnn_with_seed_100_plus_s(s):
    """Catches a "from scratch" network that starts from the pretrained model's initial weights
    (seed s, the same as pretraining's) or ignores the seed."""
    net = fine_tuning.start(None, seed=s)
    expected = state(models.digit_cnn(10, channels=transfer.CHANNELS, seed=100 + s))
    got = state(net)
    assert got.keys() == expected.keys()
    for key in got:
        assert torch.equal(got[key], expected[key]), key
    same_seed = models.digit_cnn(10, channels=transfer.CHANNELS, seed=s)
    assert not torch.equal(net.conv1.weight, same_seed.conv1.weight)


@pytest.mark.parametrize("s", [0, 1])
def test_start_keep_is_the_pretrained_model(s):
    """Catches "keep" returning another seed's pretrained model or a model with a new head."""
    got, expected = state(fine_tuning.start(SOURCE, "keep", seed=s)), state(
        transfer.pretrained(SOURCE, seed=s))
    assert got.keys() == expected.keys()
    for key in got:
        assert torch.equal(got[key], expected[key]), key


@pytest.mark.parametrize("s", [0, 1])
def test_start_new_keeps_the_backbone_and_replaces_the_head(s):
    """Catches "new" keeping the source's classifier, replacing more than the head, or drawing
    the new head from another seed than transfer.new_head(..., seed=s)."""
    net = fine_tuning.start(SOURCE, "new", seed=s)
    pretrained = transfer.pretrained(SOURCE, seed=s)
    reference = transfer.new_head(transfer.pretrained(SOURCE, seed=s), seed=s)
    for name in ("conv1", "conv2"):
        for p, q in zip(getattr(net, name).parameters(), getattr(pretrained, name).parameters()):
            assert torch.equal(p, q), name
    assert not torch.equal(net.head.weight, pretrained.head.weight)
    assert torch.equal(net.head.weight, reference.head.weight)
    assert torch.equal(net.head.bias, reference.head.bias)
    other = transfer.new_head(transfer.pretrained(SOURCE, seed=s), seed=s + 1)
    assert not torch.equal(net.head.weight, other.head.weight)


@pytest.mark.parametrize("kwargs, match", [
    ({"source": SOURCE, "head": "old"}, r"^head must be one of \['keep', 'new'\], got 'old'"),
    ({"source": None, "head": "fresh"}, r"^head must be one of \['keep', 'new'\]"),
    ({"source": "sketched"}, r"^source must be one of"),
    ({"source": None, "seed": -1}, r"^seed must be an integer >= 0, got -1"),
])
def test_start_refuses_bad_input(kwargs, match):
    """Catches a typo in ``head`` or ``source`` silently starting from another network."""
    with pytest.raises(ValueError, match=match):
        fine_tuning.start(**kwargs)


def test_accuracy_is_the_share_of_rows_classified_right():
    """Catches an argmax over the wrong axis, a count instead of a share, or a tensor (with a
    graph) returned instead of a float: against NumPy on logits where exactly 3 of 8 rows are
    right."""
    net = models.digit_cnn(10, channels=transfer.CHANNELS, seed=5)
    X = torch.rand(8, 64, generator=torch.Generator().manual_seed(0))
    predicted = net(X).detach().numpy().argmax(1)
    y = torch.as_tensor((predicted + np.r_[0, 0, 0, 1, 2, 3, 4, 5]) % 10)
    acc = fine_tuning.accuracy(net, X, y)
    assert type(acc) is float
    assert acc == np.mean(predicted == y.numpy()) == 3 / 8
    assert fine_tuning.accuracy(net, X, torch.as_tensor(predicted)) == 1.0


def test_evaluate_digit_cnns_is_the_batched_forward_and_each_network():
    """Catches the evaluation of K networks with torch's convolution differing from the training
    forward pass (another padding, the filters of another network, a head applied without its
    bias or transposed): the same outputs as _forward_digit_cnns on x repeated K times and as
    each network's own forward pass, within 1e-5."""
    nets = [transfer.new_head(models.digit_cnn(10, channels=transfer.CHANNELS, seed=s), seed=s)
            for s in range(3)]
    params = batched._stack_digit_cnns(nets)
    x = transfer.target_split(PER_CLASS, seed=0).X_val[:40]
    out = batched._evaluate_digit_cnns(params, x)
    assert out.shape == (3, 40, 10) and not out.requires_grad
    reference = batched._forward_digit_cnns(params, x.expand(3, *x.shape)).detach()
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        for k, net in enumerate(nets):
            torch.testing.assert_close(out[k], net(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[0], out[1], atol=1e-3)  # the networks differ


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def test_compare_gives_every_arm_its_settings_seeds_and_evaluations(experiment):
    """Catches results reshaped the wrong way (settings and seeds swapped, an arm getting
    another's rows), the evaluation before the first update missing, or rates not those of the
    arm: (R, S, E) per arm, evaluated at updates 0, 2 and 4."""
    arms, results, _ = experiment
    assert list(results) == list(arms)
    for name, arm in arms.items():
        res = results[name]
        assert isinstance(res, ArmResult)
        assert res.val_acc.shape == (len(arm.rates), len(SEEDS), 3), name
        assert res.eval_steps.tolist() == [0, 2, 4]
        np.testing.assert_array_equal(res.rates, arm.rates)
        np.testing.assert_array_equal(res.final, res.val_acc[:, :, -1])
        assert ((res.val_acc >= 0) & (res.val_acc <= 1)).all()


def test_compare_step_0_is_the_accuracy_of_the_start(experiment):
    """Catches the evaluation before training measured on another network (another seed's, the
    pretrained head instead of the new one) or on other images than the test pool."""
    arms, results, splits = experiment
    test = splits[0]
    for name, arm in arms.items():
        for s_i, s in enumerate(SEEDS):
            expected = fine_tuning.accuracy(arm.start(s), test.X_val, test.y_val)
            np.testing.assert_array_equal(results[name].val_acc[:, s_i, 0], expected)
    before = results["keep"].val_acc[0, :, 0]
    assert before.min() > 0.5  # the pretrained classifier already reads the noisy digits
    assert results["new"].val_acc[0, 0, 0] != results["keep"].val_acc[0, 0, 0]


def test_each_run_of_compare_is_fine_tune_of_that_run_alone(experiment):
    """Catches runs that are not independent or not paired: another seed's target images or
    minibatches, another setting's or arm's rates, the layers' rates in the wrong order, the
    gradual unfreezing of one arm applied to another. The accuracies after 2 and 4 updates of
    run (arm, setting r, seed s) are those of transfer.fine_tune on that network alone, trained
    on target_split(per_class, seed=s) with minibatch seed s (within an image: the batched and
    the single loop round differently)."""
    arms, results, splits = experiment
    for name, arm in arms.items():
        if arm.unfreeze_at != (0, 0, 0):
            continue  # fine_tune has no gradual unfreezing: see the test below
        for r, rates in enumerate(arm.rates):
            for s_i, s in enumerate(SEEDS):
                hist = transfer.fine_tune(arm.start(s), splits[s], rates=dict(zip(LAYERS, rates)),
                                          steps=STEPS, batch_size=16, optimizer="adam", seed=s,
                                          eval_every=EVERY)
                assert hist.eval_steps == [2, 4]
                np.testing.assert_allclose(results[name].val_acc[r, s_i, 1:], hist.val_acc,
                                           atol=1.5 / len(splits[s].y_val),
                                           err_msg=f"{name}, setting {r}, seed {s}")


def test_arms_that_start_and_train_alike_get_identical_results(experiment):
    """Catches runs that leak into each other or depend on their place in the batch: the same
    arm twice gives the same numbers, and the arm compared on its own gives them too."""
    arms, results, _ = experiment
    np.testing.assert_array_equal(results["keep"].val_acc, results["keep again"].val_acc)
    alone = fine_tuning.compare({"keep": arms["keep"]}, PER_CLASS, seeds=SEEDS[::-1],
                                steps=STEPS, eval_every=EVERY)
    np.testing.assert_allclose(alone["keep"].val_acc, results["keep"].val_acc[:, ::-1],
                               atol=1e-6)
    assert not np.array_equal(results["keep"].val_acc[0], results["keep"].val_acc[1])


def test_unfreeze_at_reaches_the_training_loop(experiment):
    """Catches an arm's ``unfreeze_at`` being dropped: the backbone unfrozen only at update 4 of
    4 never moves, so the arm is the linear probe with the same head rate, to the last digit;
    the same arm without gradual unfreezing is not."""
    arms, results, _ = experiment
    np.testing.assert_array_equal(arms["late"].rates[:, 2], arms["probe"].rates[:, 2])
    np.testing.assert_array_equal(results["late"].val_acc, results["probe"].val_acc)
    unfrozen = fine_tuning.compare({"late": Arm(new, arms["late"].rates)}, PER_CLASS,
                                   seeds=SEEDS, steps=STEPS, eval_every=EVERY)
    assert not np.array_equal(unfrozen["late"].final, results["probe"].final)


def test_compare_hands_each_run_its_seeds_data_and_settings(monkeypatch):
    """Catches seeds that are not paired (an arm drawing other target images than another arm
    for the same seed), a run trained with another seed's minibatches, settings or unfreezing
    attached to the wrong run, and a batch size larger than the 20 target images reaching the
    loop (which refuses it): the arguments compare passes to batched.fine_tune_cnns."""
    calls = []
    real = batched.fine_tune_cnns

    def spy(models_, X_train, y_train, X_val, y_val, **kwargs):
        calls.append(dict(kwargs, X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val))
        return real(models_, X_train, y_train, X_val, y_val, **kwargs)

    monkeypatch.setattr(batched, "fine_tune_cnns", spy)
    arms = {"a": Arm(scratch, fine_tuning.layer_rates([1e-2, 2e-2], "top"), (0, 1, 2)),
            "b": Arm(scratch, fine_tuning.layer_rates([3e-2], "discriminative"))}
    seeds = [2, 0, 1]
    results = fine_tuning.compare(arms, PER_CLASS, seeds=seeds, steps=3, batch_size=64,
                                  optimizer="sgd")
    (call,) = calls
    n_runs = 3 * len(seeds)
    assert call["X_train"].shape == (n_runs, 10 * PER_CLASS, 64)
    assert call["batch_size"] == 10 * PER_CLASS  # min(64, 20)
    assert (call["steps"], call["optimizer"], call["eval_every"]) == (3, "sgd", 3)
    splits = {s: transfer.target_split(PER_CLASS, seed=s) for s in seeds}
    assert torch.equal(call["X_val"], splits[2].X_val) and torch.equal(call["y_val"],
                                                                      splits[2].y_val)
    runs = [(name, r, s) for name, arm in arms.items() for r in range(len(arm.rates))
            for s in seeds]
    expected = sorted((name, r, s, tuple(arms[name].rates[r]), arms[name].unfreeze_at)
                      for name, r, s in runs)
    got = []
    for k in range(n_runs):
        s = int(call["seeds"][k])
        assert torch.equal(call["X_train"][k], splits[s].X_train), k  # paired by seed
        assert torch.equal(call["y_train"][k], splits[s].y_train), k
        name = next(n for n, arm in arms.items()
                    if tuple(call["unfreeze_at"][k]) == arm.unfreeze_at)
        r = [tuple(row) for row in arms[name].rates].index(tuple(call["rates"][k]))
        got.append((name, r, s, tuple(call["rates"][k]), tuple(call["unfreeze_at"][k])))
    assert sorted(got) == expected
    assert results["a"].eval_steps.tolist() == [0, 3]  # eval_every None: only the end
    assert results["b"].val_acc.shape == (1, 3, 2)


def test_compare_caps_the_batch_size_at_the_training_set():
    """Catches a batch size larger than the few target images being refused or used as is:
    the same runs as with a batch of all 20 images, and not those with the default 16."""
    arms = {"a": Arm(scratch, fine_tuning.layer_rates([3e-2], "all"))}
    kwargs = dict(seeds=[0], steps=3, optimizer="sgd")
    big = fine_tuning.compare(arms, PER_CLASS, batch_size=500, **kwargs)["a"]
    full = fine_tuning.compare(arms, PER_CLASS, batch_size=10 * PER_CLASS, **kwargs)["a"]
    default = fine_tuning.compare(arms, PER_CLASS, **kwargs)["a"]
    np.testing.assert_array_equal(big.val_acc, full.val_acc)
    assert not np.array_equal(big.final, default.final)


def test_a_diverged_run_counts_zero_after_it_diverged():
    """Catches a divergence erasing the evaluations made before it (the documented rule is 0
    *after* a divergence), or NaN left in the curves: SGD at rate 1000 is still evaluated
    after its first update and diverges at the second; its final accuracy is 0."""
    arms = {"boom": Arm(scratch, fine_tuning.layer_rates([1e3], "all"))}
    res = fine_tuning.compare(arms, PER_CLASS, seeds=[0], steps=3, optimizer="sgd",
                              eval_every=1)["boom"]
    split = transfer.target_split(PER_CLASS, seed=0)
    hist = batched.fine_tune_cnns([scratch(0)], split.X_train[None], split.y_train[None],
                                  split.X_val, split.y_val, rates=arms["boom"].rates, steps=3,
                                  seeds=0, batch_size=16, optimizer="sgd", eval_every=1)
    assert hist.diverged[0] and not np.isnan(hist.val_acc[0, 0]) and hist.val_acc[0, 0] > 0
    assert np.isnan(hist.val_acc[0, 1:]).all()
    np.testing.assert_array_equal(res.val_acc[0, 0], [
        fine_tuning.accuracy(scratch(0), split.X_val, split.y_val), hist.val_acc[0, 0], 0, 0])
    assert res.best.tolist() == [0.0]


def bad_arms():
    return {"a": Arm(scratch, fine_tuning.layer_rates([1e-2]))}


@pytest.mark.parametrize("changes, match", [
    ({"arms": {}}, r"^arms must hold at least one Arm"),
    ({"arms": {"a": {"start": scratch, "rates": [[0.1] * 3]}}},
     r"^arms\['a'\] must be an Arm, got dict"),
    ({"seeds": []}, r"^seeds must hold at least one seed"),
    ({"seeds": [0, -1]}, r"^seeds must be an integer >= 0, got -1"),
    ({"steps": 0}, r"^steps must be an integer >= 1, got 0"),
    ({"steps": 2.5}, r"^steps must be an integer >= 1"),
    ({"eval_every": 0}, r"^eval_every must be an integer >= 1, got 0"),
    ({"batch_size": 0}, r"^batch_size must be an integer >= 1, got 0"),
    ({"per_class": 0}, r"^per_class must be an integer in \[1, 50\], got 0"),
    ({"domain": "blurred"}, r"^domain must be one of"),
    ({"optimizer": "rmsprop"}, r"^optimizer must be one of \['adam', 'momentum', 'sgd'\]"),
])
def test_compare_refuses_bad_input(changes, match):
    """Catches a mistake in the experiment's settings reaching the training loop (where it would
    fail with an unrelated message) or being ignored (no arms, no seeds: empty results)."""
    kwargs = dict(arms=bad_arms(), per_class=PER_CLASS, seeds=[0], steps=2)
    kwargs.update(changes)
    with pytest.raises(ValueError, match=match):
        fine_tuning.compare(kwargs.pop("arms"), kwargs.pop("per_class"), **kwargs)


# ---------------------------------------------------------------------------------------------
# ArmResult
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def hand_built() -> ArmResult:
    """Three settings × two seeds, evaluated at updates 0, 5 and 10. Setting 0 has the best
    single run (0.95) but the worst mean; setting 1 the best mean (0.75); setting 2 a seed that
    reaches 0.8 and then falls back."""
    val_acc = np.array([
        [[0.10, 0.50, 0.95], [0.10, 0.20, 0.05]],  # final mean 0.50, max 0.95
        [[0.20, 0.70, 0.80], [0.80, 0.85, 0.70]],  # final mean 0.75
        [[0.10, 0.80, 0.60], [0.10, 0.60, 0.70]],  # final mean 0.65
    ])
    rates = fine_tuning.layer_rates([1e-3, 1e-2, 1e-1], "discriminative")
    return ArmResult(rates, np.array([0, 5, 10]), val_acc)


def test_best_setting_has_the_highest_mean_final_accuracy(hand_built):
    """Catches the best setting chosen by the best single run (max instead of mean), by the
    accuracy before training or mid-way instead of the final one, or over the wrong axis."""
    np.testing.assert_array_equal(hand_built.final, [[0.95, 0.05], [0.80, 0.70], [0.60, 0.70]])
    assert hand_built.best_setting == 1
    np.testing.assert_array_equal(hand_built.best, [0.80, 0.70])
    np.testing.assert_allclose(hand_built.best_rates, [1e-4, 1e-3, 1e-2], rtol=1e-12)


def test_steps_to_reach_is_the_first_evaluated_update(hand_built):
    """Catches the index of the evaluation returned instead of its update (2 instead of 10), the
    last time instead of the first, a strict instead of ">=" comparison, 'never' as anything but
    inf, and the start (update 0) not counting."""
    np.testing.assert_array_equal(hand_built.steps_to_reach(0.75), [10, 0])  # the best setting
    np.testing.assert_array_equal(hand_built.steps_to_reach(0.80), [10, 0])  # exactly 0.80
    np.testing.assert_array_equal(hand_built.steps_to_reach(0.5, setting=0), [5, math.inf])
    np.testing.assert_array_equal(hand_built.steps_to_reach(0.8, setting=2), [5, math.inf])
    np.testing.assert_array_equal(hand_built.steps_to_reach(0.99), [math.inf, math.inf])
    np.testing.assert_array_equal(hand_built.steps_to_reach(0.0, setting=2), [0, 0])
    assert hand_built.steps_to_reach(0.75).dtype == float


def test_steps_to_reach_on_a_compare_result(experiment):
    """Catches steps_to_reach misreading a real result: a pretrained classifier that is already
    above the bar before training counts 0; a bar above every evaluation is inf."""
    _, results, _ = experiment
    res = results["keep"]
    bar = float(res.val_acc[res.best_setting, :, 0].min())
    np.testing.assert_array_equal(res.steps_to_reach(bar), [0, 0])
    np.testing.assert_array_equal(res.steps_to_reach(1.01), [math.inf, math.inf])
