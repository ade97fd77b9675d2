"""Per-method rules on hand-checkable values: the UDA term, MPL's phases, Pseudo Labels' phases."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mentor.data import Batch
from mentor.errors import ConfigError
from mentor.losses import linear_ramp, soft_cross_entropy, uda_consistency
from mentor.methods import create_method
from mentor.models import MLP

from conftest import Identity


def test_soft_cross_entropy_matches_hard_cross_entropy_on_one_hot():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    y = torch.tensor([0, 2])
    assert soft_cross_entropy(logits, F.one_hot(y, 3).float()) == pytest.approx(float(F.cross_entropy(logits, y)))


def test_uda_masks_unconfident_examples_and_stops_gradient_through_targets():
    weak = torch.tensor([[4.0, 0.0], [0.1, 0.0]], requires_grad=True)  # confident, unsure
    strong = torch.tensor([[1.0, 1.0], [1.0, 1.0]], requires_grad=True)
    loss, kept = uda_consistency(weak, strong, temperature=1.0, threshold=0.9)
    q0 = torch.softmax(torch.tensor([4.0, 0.0]), -1)
    expected = -(q0 * torch.log_softmax(torch.tensor([1.0, 1.0]), -1)).sum() / 2  # mean over the batch
    assert float(kept) == 0.5 and float(loss.detach()) == pytest.approx(float(expected))
    loss.backward()
    assert weak.grad is None or torch.all(weak.grad == 0)
    assert torch.all(strong.grad[1] == 0) and torch.any(strong.grad[0] != 0)


def test_linear_ramp():
    assert linear_ramp(0, 10) == 0 and linear_ramp(5, 10) == 0.5 and linear_ramp(50, 10) == 1 and linear_ramp(3, 0) == 1


def mpl(total_steps, **hp):
    torch.manual_seed(0)
    method = create_method("meta_pseudo_labels", partial(MLP, (2,), 2, hidden=(4,)), 2, **hp)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(total_steps)
    return method


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


BATCH = Batch(x_l=torch.randn(4, 2), y_l=torch.tensor([0, 1, 0, 1]), x_u=torch.randn(8, 2))


def test_mpl_phases_wait_then_mpl_then_finetune():
    method = mpl(6, student_wait_steps=2, finetune_steps=2)
    teacher, student = method.models["teacher"], method.models["student"]
    kinds = []
    for _ in range(6):
        t_before, s_before = snapshot(teacher), snapshot(student)
        logs = method.step(BATCH)
        kinds.append((changed(t_before, teacher), changed(s_before, student), "loss_finetune" in logs))
    assert kinds == [(True, False, False)] * 2 + [(True, True, False)] * 2 + [(False, True, True)] * 2


def test_mpl_uda_is_active_only_with_a_strong_view():
    method = mpl(4)
    assert "teacher_uda" not in method.step(BATCH)
    strong = Batch(BATCH.x_l, BATCH.y_l, BATCH.x_u, x_u_strong=BATCH.x_u + 0.1)
    logs = method.step(strong)
    assert "teacher_uda" in logs and "uda_mask" in logs


def test_mpl_baseline_tracks_h():
    method = mpl(4, labels="sample", feedback="dot", baseline_decay=0.5)
    logs = method.step(BATCH)
    assert method.baseline == pytest.approx(0.5 * float(logs["h"]))
    state = method.state_dict()
    fresh = mpl(4, labels="sample", feedback="dot", baseline_decay=0.5)
    fresh.load_state_dict(state)
    assert fresh.baseline == method.baseline


def test_mpl_rejects_phases_longer_than_the_run():
    with pytest.raises(ConfigError, match="exceed the 4 training steps"):
        mpl(4, student_wait_steps=3, finetune_steps=2)


def test_pseudo_label_teacher_is_frozen_after_its_phase():
    torch.manual_seed(0)
    method = create_method("pseudo_label", partial(MLP, (2,), 2, hidden=(4,)), 2)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(4)
    assert method.teacher_steps == 2
    teacher, student = method.models["teacher"], method.models["student"]
    for step in range(4):
        t_before, s_before = snapshot(teacher), snapshot(student)
        method.step(BATCH)
        assert changed(t_before, teacher) == (step < 2)
        assert changed(s_before, student) == (step >= 2)


def single_model_method(name, **hp):
    method = create_method(name, Identity, 3, **hp)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(10)
    return method


def test_fixmatch_loss_is_masked_hard_label_ce_on_the_strong_view():
    x_l, y_l = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    weak = torch.tensor([[5.0, 0.0, 0.0], [0.2, 0.1, 0.0]])  # confident (p > 0.95) / not
    strong = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    out = single_model_method("fixmatch", threshold=0.95, unlabeled_weight=2.0).loss(Batch(x_l, y_l, weak, strong))
    ce_u = F.cross_entropy(strong[:1], torch.tensor([0]))  # only the confident one, label = argmax of weak
    expected_u = ce_u / 2  # averaged over the whole unlabeled batch
    assert float(out.logs["loss_u"]) == pytest.approx(float(expected_u), rel=1e-6)
    assert float(out.logs["mask_rate"]) == 0.5
    assert float(out.loss.detach()) == pytest.approx(float(F.cross_entropy(x_l, y_l) + 2 * expected_u), rel=1e-6)


def test_uda_loss_and_training_signal_annealing():
    from mentor.methods.uda import tsa_threshold

    assert tsa_threshold("none", 0.3, 10) == 1.0
    assert tsa_threshold("linear", 0.0, 10) == pytest.approx(0.1)  # 1/K at the start
    assert tsa_threshold("linear", 1.0, 10) == pytest.approx(1.0)
    assert tsa_threshold("exp", 0.5, 4) < tsa_threshold("linear", 0.5, 4) < tsa_threshold("log", 0.5, 4)
    x_l = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # already sure of class 0 / unsure
    y_l = torch.tensor([0, 1])
    weak = torch.tensor([[3.0, 0.0, 0.0]])
    strong = torch.tensor([[0.0, 2.0, 0.0]])
    uda = single_model_method("uda", temperature=0.5, threshold=0.0, tsa="linear")
    out = uda.loss(Batch(x_l, y_l, weak, strong))
    # At step 0 TSA's threshold is 1/3: the confident labeled example is left out.
    assert float(out.logs["tsa_kept"]) == 0.5
    q = torch.softmax(weak / 0.5, -1)
    expected_u = soft_cross_entropy(strong, q)
    assert float(out.logs["loss_u"]) == pytest.approx(float(expected_u), rel=1e-6)
    assert float(out.logs["loss_l"]) == pytest.approx(float(F.cross_entropy(x_l[1:], y_l[1:])), rel=1e-6)
    with pytest.raises(ConfigError, match="tsa='cubic': takes one of none, linear, log, exp"):
        single_model_method("uda", tsa="cubic")


def test_mpl_gives_teacher_and_student_their_own_dropout():
    seen = []

    def factory(**options):
        seen.append(options)
        return MLP((2,), 2, hidden=(4,), **options)

    create_method("meta_pseudo_labels", factory, 2, teacher_dropout=0.5, student_dropout=0.35)
    assert seen == [{"dropout": 0.5}, {"dropout": 0.35}]


@pytest.mark.parametrize("feedback", ["loss_diff", "expected"])
def test_mpl_measures_labeled_losses_without_touching_bn_statistics(feedback):
    """L_old and L_new are train-mode forwards of the labeled batch alone, and the JVP of
    'expected' a replay of the step's forward: the student's BN running statistics must be
    those of its one training forward over labeled + unlabeled, as if nothing else ran."""
    import copy

    from mentor.models import create_model

    torch.manual_seed(0)
    method = create_method("meta_pseudo_labels", partial(create_model, "small_cnn", (1, 8, 8), 3, widths=[4]), 3,
                           labels="sample", feedback=feedback,
                           student_labeled_weight=0.0 if feedback == "loss_diff" else 1.0)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    method.setup(10)
    student = method.models["student"]
    x_l, y_l, x_u = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), torch.randn(6, 1, 8, 8)
    expected_old = F.cross_entropy(student(x_l), y_l).item()  # train-mode forward of the labeled batch alone
    for m in student.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
    reference = copy.deepcopy(student)
    reference(torch.cat([x_l, x_u]))  # the one training forward (teacher's view = x_u without a strong view)
    logs = method.step(Batch(x_l, y_l, x_u))
    assert float(logs["loss_l_old"]) == pytest.approx(expected_old, rel=1e-5)
    for bn, ref in zip(student.modules(), reference.modules()):
        if isinstance(bn, torch.nn.BatchNorm2d):
            assert int(bn.num_batches_tracked) == 1
            assert torch.allclose(bn.running_mean, ref.running_mean) and torch.allclose(bn.running_var, ref.running_var)


def test_phase_lengths_are_step_counts_or_fractions_of_the_run():
    from mentor.methods.base import resolve_steps

    assert resolve_steps("x", 0, 1000) == 0 and resolve_steps("x", 30, 1000) == 30
    assert resolve_steps("x", 0.1, 1500) == 150 and resolve_steps("x", 0.25, 10) == 2  # round(2.5) = 2
    assert resolve_steps("x", 2.0, 10) == 2
    for bad in (-1, 2.5, "ten", True):
        with pytest.raises(ConfigError, match="x"):
            resolve_steps("x", bad, 10)
    method = mpl(20, student_wait_steps=0.1, finetune_steps=0.25, uda_ramp_steps=0.5)
    assert (method.student_wait_steps, method.finetune_steps, method.uda_ramp_steps) == (2, 5, 10)
    assert method.hparams["finetune_steps"] == 5  # the summary records the resolved lengths


def test_mpl_finetunes_with_the_students_own_optimizer_unless_given_a_learning_rate():
    method = mpl(4, finetune_steps=1)
    assert "finetune" not in method.optimizers
    paper = mpl(4, finetune_steps=1, finetune_lr=1e-5)
    assert paper.optimizers["finetune"].param_groups[0]["lr"] == 1e-5
    assert "finetune" not in paper.scheduled_optimizers()
    for m in (method, paper):
        student = snapshot(m.models["student"])
        for _ in range(4):
            logs = m.step(BATCH)
        assert "loss_finetune" in logs and changed(student, m.models["student"])


def test_mpl_rejects_inconsistent_feedback_settings():
    with pytest.raises(ConfigError, match="student_labeled_weight=0"):
        mpl(4, labels="sample", feedback="loss_diff")
    with pytest.raises(ConfigError, match="needs hard labels"):
        mpl(4, labels="soft", feedback="dot")
    with pytest.raises(ConfigError, match="drop baseline_decay"):
        mpl(4, labels="sample", baseline_decay=0.9)  # 'expected' has no sampling noise to reduce
    with pytest.raises(ConfigError, match="feedback='dots': takes one of expected, dot"):
        mpl(4, feedback="dots")


def test_mpl_student_learns_from_the_labeled_batch_too():
    """student_labeled_weight: the student's step includes CE on the labeled batch, so its
    labeled loss after the step is lower than after the pseudo-label step alone."""
    on, off = mpl(4), mpl(4, student_labeled_weight=0.0)
    logs_on, logs_off = on.step(BATCH), off.step(BATCH)
    assert float(logs_on["loss_student_sup"]) == pytest.approx(float(logs_off["loss_student_sup"]))
    assert float(logs_on["loss_l_new"]) < float(logs_off["loss_l_new"])  # the labeled step lowered it further


@pytest.mark.parametrize("label_view", ["student", "weak"])
def test_mpl_labels_come_from_the_chosen_view(label_view, monkeypatch):
    """label_view=student: the teacher labels the strong view the student learns (Algorithm 1);
    weak: it labels the weak view of the same examples. The labels and the teacher's MPL term
    must come from the same logits."""
    import mentor.methods.meta_pseudo_labels as mpl_module

    seen = []
    real = mpl_module.teacher_targets
    monkeypatch.setattr(mpl_module, "teacher_targets", lambda logits, kind, gen: seen.append(logits) or real(logits, kind, gen))
    method = mpl(4, label_view=label_view, uda_weight=0.0)
    strong = Batch(BATCH.x_l, BATCH.y_l, BATCH.x_u, x_u_strong=BATCH.x_u + 1.0)
    with torch.no_grad():
        expected = method.models["teacher"](strong.x_u if label_view == "weak" else strong.x_u_strong)
    method.step(strong)
    assert torch.allclose(seen[0], expected, atol=1e-6)
    with pytest.raises(ConfigError, match="label_view='clean': takes one of student, weak"):
        mpl(4, label_view="clean")
