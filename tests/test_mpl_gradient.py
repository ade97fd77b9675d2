"""Meta Pseudo Labels is provably right: its teacher gradient against the exact one-step
meta-gradient (autograd through the unrolled student step with torch.func), REINFORCE's
expectation, the first-order agreement of loss_diff, and the sign of the feedback."""
import copy
import itertools
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from mentor.data import Batch
from mentor.losses import soft_cross_entropy
from mentor.methods import create_method
from mentor.models import MLP

C = 3


def make_mpl(eta_s, seed=0, **hp):
    torch.manual_seed(seed)
    factory = partial(lambda **kw: MLP((2,), C, hidden=(5,), activation="tanh", **kw).double())
    hp = {"supervised_weight": 0.0, "student_labeled_weight": 0.0, **hp}  # isolate the MPL term
    method = create_method("meta_pseudo_labels", factory, C, seed=seed, **hp)
    method.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=eta_s if lr is None else lr))
    method.setup(total_steps=10)
    return method


def make_batch(n_l=4, n_u=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(x_l=torch.randn(n_l, 2, generator=g, dtype=torch.float64),
                 y_l=torch.randint(0, C, (n_l,), generator=g),
                 x_u=torch.randn(n_u, 2, generator=g, dtype=torch.float64))


def teacher_grad_after_step(method, batch):
    method.step(batch)
    return torch.cat([p.grad.reshape(-1) for p in method.models["teacher"].parameters()])


def exact_meta_gradient(method, batch, eta_s, student_labeled_weight=0.0):
    """d/d theta_T of CE(y_l, S(x_l; theta_S')), theta_S' = theta_S - eta_S grad_S [CE(softmax T(x_u), S(x_u))
    + w CE(y_l, S(x_l))], by autograd through the unrolled step."""
    teacher, student = method.models["teacher"], method.models["student"]
    tp = {k: v.detach().clone() for k, v in teacher.named_parameters()}
    sp = {k: v.detach().clone() for k, v in student.named_parameters()}

    def post_step_labeled_loss(tparams):
        q = F.softmax(functional_call(teacher, tparams, (batch.x_u,)), dim=-1)

        def student_loss(sparams):
            loss = soft_cross_entropy(functional_call(student, sparams, (batch.x_u,)), q)
            return loss + student_labeled_weight * F.cross_entropy(functional_call(student, sparams, (batch.x_l,)),
                                                                   batch.y_l)

        g = grad(student_loss)(sp)
        stepped = {k: sp[k] - eta_s * g[k] for k in sp}
        return F.cross_entropy(functional_call(student, stepped, (batch.x_l,)), batch.y_l)

    g_t = grad(post_step_labeled_loss)(tp)
    return torch.cat([g_t[k].reshape(-1) for k, _ in teacher.named_parameters()])


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("eta_s", [0.5, 0.05])
@pytest.mark.parametrize("w", [0.0, 1.0])
def test_soft_expected_equals_exact_meta_gradient(eta_s, w):
    """With the student's own labeled loss (w = 1) the feedback is still exact: only g_u depends on the teacher."""
    method = make_mpl(eta_s, labels="soft", feedback="expected", student_labeled_weight=w)
    batch = make_batch()
    exact = exact_meta_gradient(method, batch, eta_s, student_labeled_weight=w)
    ours = teacher_grad_after_step(method, batch)
    assert exact.norm() > 1e-6
    assert rel_err(ours, exact) < 1e-4


def test_soft_cosine_is_exact_gradient_rescaled():
    eta_s = 0.3
    batch = make_batch()
    exact = exact_meta_gradient(make_mpl(eta_s, labels="soft"), batch, eta_s)
    ours = teacher_grad_after_step(make_mpl(eta_s, labels="soft", feedback="cosine"), batch)
    cos = torch.dot(ours, exact) / (ours.norm() * exact.norm())
    assert cos > 1 - 1e-8  # same direction, different scale


@pytest.mark.parametrize("labels", ["sample", "argmax"])
def test_hard_expected_single_draw_is_exact_to_first_order(labels):
    """'expected' takes REINFORCE's expectation over the teacher's labels in closed form, so ONE
    step with hard labels already gives the exact meta-gradient up to O(eta_S) (its g_l is read
    after a step on the drawn labels rather than on q). A single 'dot' estimate is off by
    more than its own size."""
    batch = make_batch(n_l=4, n_u=8)
    errors = []
    for eta_s in (0.1, 0.01):
        method = make_mpl(eta_s, labels=labels, feedback="expected", seed=3)
        exact = exact_meta_gradient(method, batch, eta_s)
        errors.append(rel_err(teacher_grad_after_step(method, batch), exact))
    assert errors[0] < 0.5 and errors[1] < errors[0] / 5  # shrinks like eta_S
    method = make_mpl(0.01, labels="sample", feedback="dot", seed=3)
    exact = exact_meta_gradient(method, batch, 0.01)
    single_dot = len(batch.x_u) * teacher_grad_after_step(method, batch)  # x B: the unbiased scale
    assert rel_err(single_dot, exact) > 10 * errors[1]


@pytest.mark.parametrize("student_dropout", [None, 0.5])
def test_expected_feedback_h_is_the_dot_product_of_the_two_gradients(student_dropout):
    """h = (eta / B) sum_ik targets_ik d_ik from the JVP must equal eta <g_l, g_u> from the two
    gradients, with dropout too (the JVP replays the step's dropout masks)."""
    batch = make_batch(n_u=7)
    h = {}
    for feedback in ("expected", "dot"):  # each built and stepped from the same global RNG state
        h[feedback] = float(make_mpl(0.2, labels="sample", feedback=feedback, student_dropout=student_dropout,
                                     seed=4).step(batch)["h"])
    h_jvp, h_grads = h["expected"], h["dot"]
    assert abs(h_grads) > 1e-6
    assert h_jvp == pytest.approx(h_grads, rel=1e-9)


def test_reinforce_average_converges_to_exact_expected_gradient():
    """Sampled hard labels, 'dot' (Algorithm 1): the average of REINFORCE estimates approaches
    the gradient of the student's labeled loss at the expected post-step parameters, divided
    by the batch size (the teacher term is h times the batch MEAN of the teacher's CE)."""
    eta_s, samples = 0.02, 1500
    batch = make_batch(n_l=4, n_u=3)
    method = make_mpl(eta_s, labels="sample", feedback="dot", seed=3)
    exact = exact_meta_gradient(method, batch, eta_s) / len(batch.x_u)
    snapshot = copy.deepcopy(method.models.state_dict())
    estimates = []
    for _ in range(samples):
        method.models.load_state_dict(snapshot)
        estimates.append(teacher_grad_after_step(method, batch))
    estimates = torch.stack(estimates)
    assert estimates.std(0).norm() > exact.norm()  # single estimates are noisy (std/norm ~ 3.3)...
    few = rel_err(estimates[:30].mean(0), exact)
    many = rel_err(estimates.mean(0), exact)
    assert many < 0.15  # ...their average converges, at the Monte Carlo rate 3.3 / sqrt(1500)
    assert many < few / 3


@pytest.mark.parametrize("feedback, scale", [("dot", "B"), ("expected", "1")])
@pytest.mark.parametrize("eta_s", [0.1, 0.01])
def test_expectation_over_labels_is_exact_to_first_order(feedback, scale, eta_s, monkeypatch):
    """Enumerate every label vector of the batch (C**B of them), weight each step's teacher
    gradient by its probability under the teacher: the expectation matches the exact
    gradient up to O(eta_S): 'dot' divided by B (its mean reduction), 'expected' as it is."""
    import mentor.methods.meta_pseudo_labels as mpl_module

    batch = make_batch(n_l=4, n_u=3)
    method = make_mpl(eta_s, labels="sample", feedback=feedback, seed=3)
    exact = exact_meta_gradient(method, batch, eta_s) / (len(batch.x_u) if scale == "B" else 1)
    with torch.no_grad():
        probs = F.softmax(method.models["teacher"](batch.x_u), -1)
    snapshot = copy.deepcopy(method.models.state_dict())
    expectation = torch.zeros_like(exact)
    for labels in itertools.product(range(C), repeat=len(batch.x_u)):
        labels = torch.tensor(labels)
        monkeypatch.setattr(mpl_module, "teacher_targets",
                            lambda logits, kind, gen, labels=labels: F.one_hot(labels, C).double())
        method.models.load_state_dict(snapshot)
        weight = probs[torch.arange(len(labels)), labels].prod()
        expectation += weight * teacher_grad_after_step(method, batch)
    assert rel_err(expectation, exact) < 3 * eta_s


@pytest.mark.parametrize("labels", ["argmax", "sample"])
def test_loss_diff_agrees_with_dot_to_first_order(labels):
    batch = make_batch()
    gaps = []
    for eta_s in (0.1, 0.01, 0.001):
        dot = teacher_grad_after_step(make_mpl(eta_s, labels=labels, feedback="dot"), batch)
        diff = teacher_grad_after_step(make_mpl(eta_s, labels=labels, feedback="loss_diff"), batch)
        gaps.append(rel_err(diff, dot))
    assert gaps[1] < gaps[0] / 5 and gaps[2] < gaps[1] / 5  # the gap shrinks like eta_S
    assert gaps[2] < 0.01


@pytest.mark.parametrize("feedback, w", [("expected", 0.0), ("expected", 1.0), ("dot", 0.0), ("dot", 1.0),
                                         ("cosine", 0.0), ("loss_diff", 0.0)])
@pytest.mark.parametrize("agree", [True, False])
def test_feedback_sign(feedback, w, agree):
    """Train the student on the teacher's label for x; label x as that class (agree) or as
    another (disagree). The label that lowered the student's labeled loss must become more
    likely under the teacher, the one that raised it less likely. With the student's own
    labeled loss on (w = 1) the judgement is about the pseudo label's gradient alone."""
    method = make_mpl(0.5, labels="argmax", feedback=feedback, seed=5, student_labeled_weight=w)
    x = torch.tensor([[0.7, -0.3]], dtype=torch.float64)
    teacher = method.models["teacher"]
    with torch.no_grad():
        p_before = F.softmax(teacher(x), -1)[0]
    y_hat = int(p_before.argmax())
    y_l = y_hat if agree else (y_hat + 1) % C
    logs = method.step(Batch(x_l=x, y_l=torch.tensor([y_l]), x_u=x))
    with torch.no_grad():
        p_after = F.softmax(teacher(x), -1)[0]
    if w == 0:
        assert (float(logs["loss_l_old"]) > float(logs["loss_l_new"])) == agree
    assert (float(logs["h"]) > 0) == agree
    if agree:
        assert p_after[y_hat] > p_before[y_hat]
    else:
        assert p_after[y_hat] < p_before[y_hat]


def test_feedback_none_gives_the_teacher_no_mpl_term():
    method = make_mpl(0.5, labels="sample", feedback="none")
    batch = make_batch()
    before = [p.detach().clone() for p in method.models["teacher"].parameters()]
    logs = method.step(batch)
    assert float(logs["teacher_mpl"]) == 0.0 and float(logs["loss_u"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(before, method.models["teacher"].parameters()))
