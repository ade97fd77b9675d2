"""Rules of the consistency family on hand-checkable values: Pi-model, Temporal Ensembling,
Mean Teacher, VAT, ICT."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mentor.data import Batch
from mentor.losses import sigmoid_rampup, softmax_mse
from mentor.methods import create_method
from mentor.methods.consistency import ema_decay
from mentor.models import MLP, create_model


def method(name, total_steps=100, num_unlabeled=0, model=None, **hp):
    torch.manual_seed(0)
    factory = model or partial(MLP, (2,), 3, hidden=(5,))
    m = create_method(name, factory, 3, **hp)
    m.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    m.num_unlabeled = num_unlabeled
    m.setup(total_steps)
    return m


def batch(n_l=4, n_u=6, seed=0, idx=None):
    g = torch.Generator().manual_seed(seed)
    x_l, x_u = torch.randn(n_l, 2, generator=g), torch.randn(n_u, 2, generator=g)
    return Batch(x_l, torch.arange(n_l) % 3, x_u, idx_u=idx,
                 x_l_alt=x_l + 0.1 * torch.randn(n_l, 2, generator=g),
                 x_u_alt=x_u + 0.1 * torch.randn(n_u, 2, generator=g))


def test_sigmoid_rampup_shape():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(10, 10) == 1.0 and sigmoid_rampup(99, 10) == 1.0 and sigmoid_rampup(0, 0) == 1.0


def test_pi_model_compares_two_passes_with_gradient_through_both():
    m = method("pi_model", ramp_steps=10)
    b = batch()
    out = m.loss(b)
    model = m.models["model"]
    first, second = model(torch.cat([b.x_l, b.x_u])), model(torch.cat([b.x_l_alt, b.x_u_alt]))
    expected = softmax_mse(first, F.softmax(second, -1)).detach()
    assert float(out.logs["loss_u"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out.logs["weight_u"]) == pytest.approx(100 * math.exp(-5))
    # Gradient through both passes: the consistency gradient differs from the stop-gradient one.
    both = torch.autograd.grad(softmax_mse(first, F.softmax(second, -1)), list(model.parameters()), retain_graph=True)
    one = torch.autograd.grad(softmax_mse(first, F.softmax(second, -1).detach()), list(model.parameters()))
    assert any(not torch.allclose(a, c) for a, c in zip(both, one))


def test_temporal_ensembling_targets_are_bias_corrected_epoch_averages():
    m = method("temporal_ensembling", num_unlabeled=6, ramp_steps=0)
    idx = torch.arange(6)
    first = m.loss(batch(idx=idx))  # one step is one epoch here (6 // 6)
    assert float(first.logs["has_target"]) == 0 and float(first.logs["loss_u"]) == 0
    model = m.models["model"]
    with torch.no_grad():
        z1 = F.softmax(model(batch(idx=idx).x_u), -1)
    target, has = m.targets(idx)
    assert has.all() and torch.allclose(target, z1, atol=1e-6)  # 0.4 z / (1 - 0.6) = z
    assert torch.allclose(m.ensemble[idx], 0.4 * z1, atol=1e-6)
    second = m.loss(batch(idx=idx))
    assert float(second.logs["loss_u"]) == pytest.approx(0.0, abs=1e-10)  # the same model, the same inputs
    assert torch.allclose(m.targets(idx)[0], z1, atol=1e-6)  # (0.24 z + 0.4 z) / (1 - 0.36) = z
    assert m.updates.tolist() == [2] * 6


def test_temporal_ensembling_updates_once_per_epoch():
    m = method("temporal_ensembling", num_unlabeled=12, ramp_steps=0)
    m.loss(batch(idx=torch.arange(6)))
    assert m.steps_per_epoch == 2 and int(m.updates.sum()) == 0  # mid-epoch: no update yet
    m.step_index += 1
    m.loss(batch(idx=torch.arange(6, 12)))
    assert m.updates.tolist() == [1] * 12


def test_mean_teacher_ema_schedule_and_update():
    assert ema_decay(0, 0.99) == 0.0 and ema_decay(1, 0.99) == 0.5 and ema_decay(10_000, 0.99) == 0.99
    m = method("mean_teacher", ramp_steps=2)
    assert not any(p.requires_grad for p in m.models["teacher"].parameters())
    m.step(batch())
    student, teacher = m.models["model"], m.models["teacher"]
    for s, t in zip(student.parameters(), teacher.parameters()):
        assert torch.equal(s, t)  # alpha = 0 at t = 0: the teacher copies the student
    before = [t.clone() for t in teacher.parameters()]
    m.step(batch(seed=1))
    for s, t, b in zip(student.parameters(), teacher.parameters(), before):
        assert torch.allclose(t, 0.5 * b + 0.5 * s)  # alpha = min(1 - 1/2, 0.99)


def test_mean_teacher_uses_the_teachers_own_noisy_view():
    m = method("mean_teacher")
    b = batch()
    out = m.loss(b)
    with torch.no_grad():
        s = m.models["model"](torch.cat([b.x_l, b.x_u]))
        t = m.models["teacher"](torch.cat([b.x_l_alt, b.x_u_alt]))
    assert float(out.logs["loss_u"]) == pytest.approx(float(softmax_mse(s, F.softmax(t, -1))), rel=1e-5)
    assert float(out.logs["loss_u"]) > 0  # the teacher is a copy, so only the noise makes it differ


def test_mean_teacher_dual_head():
    m = method("mean_teacher", dual_head=True)
    assert m.models["model"](torch.randn(2, 2)).shape == (2, 6)
    assert m.eval_model()(torch.randn(2, 2)).shape == (2, 3)
    assert m.eval_models()["teacher"](torch.randn(2, 2)).shape == (2, 3)
    out = m.loss(batch())
    assert float(out.logs["logit_distance"]) > 0


def test_vat_perturbation_has_norm_epsilon_and_is_adversarial():
    m = method("vat", epsilon=0.5)
    x = torch.randn(8, 2)
    clean = m.models["model"](x).detach()
    d = m.adversarial_direction(x, clean)
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5)
    from mentor.losses import kl_divergence

    model = m.models["model"]
    adversarial = kl_divergence(clean, model(x + 0.5 * d))
    random = torch.stack([kl_divergence(clean, model(x + 0.5 * F.normalize(torch.randn(8, 2), dim=1)))
                          for _ in range(20)]).mean()
    assert adversarial > random
    tiny_xi = method("vat", xi=1e-6)  # the paper's xi: zero gradients in float32 keep the random direction
    d = tiny_xi.adversarial_direction(x, tiny_xi.models["model"](x).detach())
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.ones(8), atol=1e-5)


def test_vat_perturbation_passes_leave_batch_norm_statistics_alone():
    m = method("vat", model=lambda: create_model("small_cnn", (1, 8, 8), 3, widths=[4]))
    b = Batch(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), torch.randn(6, 1, 8, 8))
    bn = next(mod for mod in m.models["model"].modules() if isinstance(mod, torch.nn.BatchNorm2d))
    m.loss(b)
    after_vat = bn.running_mean.clone()
    reference = method("vat", model=lambda: create_model("small_cnn", (1, 8, 8), 3, widths=[4]))
    reference.models["model"](torch.cat([b.x_l, b.x_u]))  # one clean forward only
    ref_bn = next(mod for mod in reference.models["model"].modules() if isinstance(mod, torch.nn.BatchNorm2d))
    assert torch.allclose(after_vat, ref_bn.running_mean) and int(bn.num_batches_tracked) == 1


def test_ict_mixes_inputs_and_teacher_targets():
    m = method("ict", ramp_steps=0)
    b = batch()
    out = m.loss(b)
    assert 0.0 <= float(out.logs["lam"]) <= 1.0 and float(out.logs["loss_u"]) > 0
    m.step(b)
    for s, t in zip(m.models["model"].parameters(), m.models["teacher"].parameters()):
        assert torch.equal(s, t)  # first EMA step copies the student
    assert set(m.eval_models()) == {"teacher"}
