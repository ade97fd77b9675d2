"""Reduced MPL (MPL appendix E): the reduced teacher starts as the identity on the large
teacher's distributions, the phases hand over at large_teacher_steps, and the large
teacher's predictions are computed once, on the clean pool, in eval mode."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mentor.data import Batch
from mentor.errors import ConfigError
from mentor.methods import create_method
from mentor.methods.base import UnlabeledPool
from mentor.methods.reduced_mpl import ReducedTeacher
from mentor.models import MLP
from mentor.train import Trainer

from conftest import tiny_config


def test_reduced_teacher_starts_as_the_identity_map():
    p = F.softmax(torch.randn(5, 4), dim=-1)
    teacher = ReducedTeacher(4, hidden=16, layers=5)
    assert torch.allclose(F.softmax(teacher(p), dim=-1), p, atol=1e-6)
    assert sum(isinstance(m, torch.nn.Linear) for m in teacher.modules()) == 5  # a 5-layer perceptron


def reduced(total_steps=6, **hp):
    torch.manual_seed(0)
    method = create_method("reduced_mpl", partial(MLP, (2,), 3, hidden=(8,), dropout=0.3), 3, **hp)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(total_steps)
    pool = torch.randn(20, 2)
    method.unlabeled_pool = UnlabeledPool(pool, lambda x: 2 * x)  # an eval transform the method must apply
    return method, pool


def batch(idx):
    g = torch.Generator().manual_seed(int(idx[0]))
    return Batch(x_l=torch.randn(6, 2, generator=g), y_l=torch.tensor([0, 1, 2, 0, 1, 2]),
                 x_u=torch.randn(len(idx), 2, generator=g), idx_u=idx)


def test_phases_and_the_precomputed_distributions():
    method, pool = reduced(6, large_teacher_steps=0.5)
    assert method.large_teacher_steps == 3
    models = method.models
    moved = []
    for t in range(6):
        before = {k: [p.detach().clone() for p in m.parameters()] for k, m in models.items()}
        method.step(batch(torch.arange(t, t + 8) % 20))
        moved.append({k for k, m in models.items()
                      if any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters()))})
        if t == 2:
            assert method.large_probs is None  # nothing precomputed while the large teacher trains
    assert moved[:3] == [{"large_teacher", "student"}] * 3  # the student learns the labeled batch meanwhile
    assert all(m == {"teacher", "student"} for m in moved[3:])
    paper, _ = reduced(6, student_labeled_weight=0.0)  # the paper's student waits for phase 2
    before = [p.detach().clone() for p in paper.models["student"].parameters()]
    paper.step(batch(torch.arange(8)))
    assert all(torch.equal(a, b) for a, b in zip(before, paper.models["student"].parameters()))
    large = models["large_teacher"].eval()
    with torch.no_grad():
        expected = F.softmax(large(2 * pool), dim=-1)  # clean (transformed) inputs, eval mode: no dropout
    assert torch.allclose(method.large_probs, expected, atol=1e-6)


def test_mpl_options_apply_and_unknown_ones_list_both_sets():
    method, _ = reduced(6, feedback="none", large_teacher_options={"hidden": [16]})
    assert method.feedback == "none" and method.models["large_teacher"].net[1].out_features == 16
    with pytest.raises(ConfigError, match="large_teacher_steps.*feedback"):
        reduced(6, nope=1)
    with pytest.raises(ConfigError, match="leave no step"):
        reduced(6, large_teacher_steps=6)


def test_a_run_evaluates_the_student_the_chained_teacher_and_the_large_teacher(tiny_dataset):
    summary = Trainer(tiny_config("reduced_mpl", steps=8, method_options={}), dataset=tiny_dataset).fit()
    for key in ("final_test_accuracy", "final_teacher_test_accuracy", "final_large_teacher_test_accuracy"):
        assert 0 <= summary[key] <= 1
    assert summary["method_hparams"]["large_teacher_steps"] == 4
