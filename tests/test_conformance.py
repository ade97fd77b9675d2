"""One suite over every registered method: a new method is covered by registering it.

Each method trains a few steps on a tiny problem through the real Trainer, with a strong
view present (so auxiliary unlabeled losses are active) and SGD without weight decay (so a
parameter moves only if it received a gradient).
"""
import math

import pytest
import torch

from mentor.methods import list_methods
from mentor.registry import METHODS
from mentor.train import Trainer

from conftest import blobs, tiny_config

ALL = list_methods()


def run(method, dataset, **overrides):
    trainer = Trainer(tiny_config(method, **overrides), dataset=dataset)
    initial = {k: v.clone() for k, v in trainer.method.models.state_dict().items()}
    logs = []
    original_step = trainer.method.step

    def recording_step(batch):
        out = original_step(batch)
        logs.append({k: float(v) for k, v in out.items()})
        return out

    trainer.method.step = recording_step
    trainer.fit()
    return trainer, initial, logs


def params(trainer):
    return {k: v.detach().clone() for k, v in trainer.method.models.state_dict().items()}


def test_registry_has_the_foundation_methods():
    assert {"supervised", "pseudo_label", "meta_pseudo_labels"} <= set(ALL)


@pytest.mark.parametrize("method", ALL)
def test_losses_are_finite(method, tiny_dataset):
    _, _, logs = run(method, tiny_dataset)
    assert logs and all(math.isfinite(v) for step in logs for v in step.values())


@pytest.mark.parametrize("method", ALL)
def test_unsupervised_term_is_nonzero_and_moves_the_model(method, tiny_dataset):
    """Changing only the unlabeled data must change the trained weights (and must not, for
    supervised). A method whose two views collapsed into one would log loss_u == 0 or be
    blind to the unlabeled data, and fail here."""
    a, _, logs = run(method, tiny_dataset)
    other = blobs()
    other.x_unlabeled = other.x_unlabeled[::-1].copy() + 0.5
    b, _, _ = run(method, other)
    same = all(torch.equal(v, params(b)[k]) for k, v in params(a).items())
    if METHODS.get(method).uses_unlabeled:
        unsup = [step["loss_u"] for step in logs if "loss_u" in step]
        assert unsup and all(math.isfinite(u) for u in unsup) and max(abs(u) for u in unsup) > 0
        assert not same, "unlabeled data had no effect on training"
    else:
        assert same, "a method declared supervised-only reacted to unlabeled data"


@pytest.mark.parametrize("method", ALL)
def test_every_trainable_parameter_gets_gradient(method, tiny_dataset):
    trainer, initial, _ = run(method, tiny_dataset, weight_decay=0.0)
    named = dict(trainer.method.models.named_parameters())
    frozen = [name for name, p in named.items() if p.requires_grad and torch.equal(p.detach(), initial[name])]
    assert not frozen, f"parameters never updated: {frozen}"


@pytest.mark.parametrize("method", ALL)
def test_same_seed_same_result(method, tiny_dataset):
    a, _, logs_a = run(method, tiny_dataset)
    b, _, logs_b = run(method, tiny_dataset)
    assert logs_a == logs_b
    for k, v in params(a).items():
        assert torch.equal(v, params(b)[k]), k
    c, _, _ = run(method, tiny_dataset, seed=1)
    assert any(not torch.equal(v, params(c)[k]) for k, v in params(a).items())


@pytest.mark.parametrize("method", ALL)
def test_killed_run_resumes_the_same_trajectory(method, tiny_dataset, tmp_path):
    straight = Trainer(tiny_config(method, out=str(tmp_path / "straight")), dataset=tiny_dataset)
    straight.fit()

    out = str(tmp_path / "killed")
    killed = Trainer(tiny_config(method, out=out), dataset=tiny_dataset)
    calls = {"n": 0}
    original_next = killed.stream.next

    def dying_next():
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at step 3, in the middle of the next interval
            raise KeyboardInterrupt
        return original_next()

    killed.stream.next = dying_next
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = Trainer(tiny_config(method, out=out), dataset=tiny_dataset)
    resumed.fit(resume=True)
    assert resumed.step == straight.step
    for k, v in params(straight).items():
        assert torch.equal(v, params(resumed)[k]), k
    with open(tmp_path / "killed" / "metrics.jsonl") as f:
        assert [int(line.split('"step": ')[1].split(",")[0]) for line in f] == [3, 6]
