"""The modern pseudo-labelling family's rules on hand-computed values (FlexMatch's thresholds from
given counts, FreeMatch's after given batches, SoftMatch's weights, AdaMatch's relative threshold,
Dash's schedule, SimMatch's unfolded labels for a given bank, CoMatch's graph, DeFixMatch's debiasing,
ReFixMatch's KL term, SequenceMatch's chain, CRMatch's heads), and the shared distribution alignment
and debiasing options."""
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mentor.data import Batch
from mentor.errors import ConfigError
from mentor.methods import create_method
from mentor.methods.alignment import PseudoLabelAdjustment
from mentor.models import MLP
from mentor.registry import METHODS
from mentor.train import Trainer

from conftest import Identity, die_at_draw, tiny_config

FAMILY = ["flexmatch", "freematch", "softmatch", "adamatch", "simmatch", "comatch", "crmatch", "dash", "defixmatch",
          "refixmatch", "sequencematch"]


def method(name, factory=Identity, classes=3, **hp):
    m = create_method(name, factory, classes, **hp)
    m.configure_optimizers(lambda params, lr=None: torch.optim.SGD(params, lr=0.1))
    m.setup(100)
    return m


def probs_batch(probs, idx=None, x_l=None, y_l=None):
    """A batch whose weak logits are log(probs), so that softmax(weak) == probs."""
    logits = torch.tensor(probs).log()
    x_l = torch.zeros(1, logits.shape[1]) if x_l is None else x_l
    y_l = torch.tensor([0]) if y_l is None else y_l
    idx = torch.arange(len(logits)) if idx is None else torch.tensor(idx)
    return Batch(x_l, y_l, logits, logits.clone(), idx_u=idx, idx_l=torch.arange(len(y_l)))


def test_the_family_is_registered():
    assert set(FAMILY) <= set(METHODS.names())


# --- FlexMatch ------------------------------------------------------------------------------
def test_flexmatch_thresholds_from_given_counts():
    from mentor.methods.flexmatch import convex_mapping, flexmatch_beta

    selected = torch.tensor([0, 0, 0, 1, -1, -1, -1, -1, -1, -1])  # sigma = (3, 1, 0), 6 unused
    beta = flexmatch_beta(selected, 3, warmup=True)  # normaliser max(3, 6) = 6
    assert beta.tolist() == pytest.approx([0.5, 1 / 6, 0.0])
    assert (0.95 * convex_mapping(beta)).tolist() == pytest.approx([0.95 * 0.5 / 1.5, 0.95 / 11, 0.0])
    assert flexmatch_beta(selected, 3, warmup=False).tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    assert flexmatch_beta(torch.full((4,), -1), 3).tolist() == [0.0, 0.0, 0.0]


def test_flexmatch_masks_with_the_thresholds_before_the_step_then_records():
    m = method("flexmatch", threshold=0.9)
    m.num_unlabeled = 4
    # all thresholds start at 0: every example is trusted at the first step
    weights = m.confidence_weights(torch.tensor([[0.95, 0.03, 0.02], [0.5, 0.3, 0.2]]),
                                   probs_batch([[1, 1, 1]] * 2, idx=[2, 0]), None)
    assert weights.tolist() == [1.0, 1.0]
    assert m.selected.tolist() == [-1, -1, 0, -1]  # only the example above tau = 0.9 is recorded
    # sigma = (1, 0, 0), 3 unused: beta(0) = 1/3, threshold 0.9 * (1/3) / (5/3) = 0.18
    assert m.class_thresholds().tolist() == pytest.approx([0.18, 0.0, 0.0])
    m.confidence_weights(torch.tensor([[0.95, 0.03, 0.02]] * 2), probs_batch([[1, 1, 1]] * 2, idx=[0, 1]), None)
    # sigma = (3, 0, 0), 1 unused: beta(0) = 1, class 0's threshold is tau itself
    assert m.class_thresholds().tolist() == pytest.approx([0.9, 0.0, 0.0])
    weights = m.confidence_weights(torch.tensor([[0.85, 0.1, 0.05], [0.1, 0.5, 0.4]]),
                                   probs_batch([[1, 1, 1]] * 2, idx=[3, 3]), None)
    assert weights.tolist() == [0.0, 1.0]


def test_flexmatch_state_round_trips():
    m = method("flexmatch")
    m.num_unlabeled = 3
    m.confidence_weights(torch.tensor([[0.99, 0.0, 0.01]]), probs_batch([[1, 1, 1]], idx=[1]), None)
    fresh = method("flexmatch")
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh.selected, m.selected) and torch.equal(fresh.beta, m.beta)


# --- FreeMatch ------------------------------------------------------------------------------
def test_freematch_thresholds_after_given_batches():
    m = method("freematch", momentum=0.5)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    weights = m.confidence_weights(probs, None, None)
    # tau = 0.5 / 3 + 0.5 * 0.65; p~ = 0.5 / 3 + 0.5 * (0.4, 0.25, 0.35)
    tau = 0.5 / 3 + 0.5 * 0.65
    p_model = [0.5 / 3 + 0.5 * v for v in (0.4, 0.25, 0.35)]
    assert float(m.statistics["time_p"]) == pytest.approx(tau)
    assert m.statistics["p_model"].tolist() == pytest.approx(p_model)
    assert m.statistics["label_hist"].tolist() == pytest.approx([0.5 / 3 + 0.25, 0.5 / 3, 0.5 / 3 + 0.25])
    assert weights.tolist() == [1.0, 1.0]  # 0.7 >= tau; 0.6 >= tau * p~(2) / p~(0)
    probs2 = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.42, 0.38]])
    weights = m.confidence_weights(probs2, None, None)
    tau2 = 0.5 * tau + 0.5 * (0.5 + 0.42) / 2
    p2 = [0.5 * p + 0.5 * v for p, v in zip(p_model, (0.35, 0.36, 0.29))]
    expected = [0.5 >= tau2 * p2[0] / max(p2), 0.42 >= tau2 * p2[1] / max(p2)]
    assert float(m.statistics["time_p"]) == pytest.approx(tau2)
    assert weights.tolist() == [float(e) for e in expected] and expected == [True, False]


def test_freematch_fairness_loss_matches_the_papers_formula_and_its_gradient():
    from mentor.methods.alignment import SingleProcess
    from mentor.methods.freematch import fairness_loss

    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    p_model, label_hist = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.4, 0.4, 0.2])
    loss = fairness_loss(logits, mask, p_model, label_hist, SingleProcess())
    # direct form (USB's entropy_loss) on the selected rows
    chosen = logits[mask.bool()].softmax(-1)
    hist = torch.bincount(chosen.argmax(-1), minlength=3).float()
    hist = hist / hist.sum()
    a = p_model / label_hist
    a = a / a.sum()
    scale = torch.where(hist > 0, 1 / hist.clamp_min(1e-12), torch.zeros(3))
    b = chosen.mean(0) * scale
    b = b / b.sum()
    direct = (a * torch.log(b + 1e-12)).sum()
    assert float(loss.detach()) == pytest.approx(float(direct.detach()), rel=1e-6)
    (g1,) = torch.autograd.grad(loss, logits)
    (g2,) = torch.autograd.grad(direct, logits)
    torch.testing.assert_close(g1, g2)
    assert float(fairness_loss(logits, torch.zeros(6), p_model, label_hist, SingleProcess()).detach()) == 0.0


# --- SoftMatch ------------------------------------------------------------------------------
def test_softmatch_weights_for_given_confidences():
    from mentor.methods.alignment import SingleProcess
    from mentor.methods.softmatch import batch_moments, truncated_gaussian

    w = truncated_gaussian(torch.tensor([0.7, 0.5, 0.3]), torch.tensor(0.5), torch.tensor(0.04), 2.0)
    # above the mean: 1; 0.2 under it with sigma^2 = 0.04, n = 2: exp(-0.04 / (2 * 0.04 / 4)) = exp(-2)
    assert w.tolist() == pytest.approx([1.0, 1.0, math.exp(-2)])
    mean, var = batch_moments(torch.tensor([0.2, 0.4, 0.9]), SingleProcess())
    assert float(mean) == pytest.approx(0.5) and float(var) == pytest.approx(0.13)
    m = method("softmatch", momentum=0.5)
    assert m.pseudo_label_adjustment.dist_align == "uniform"  # SoftMatch's uniform alignment by default
    m.confidence_weights(torch.tensor([[0.2, 0.4, 0.4], [0.9, 0.05, 0.05]]), None, None)
    assert float(m.mu) == pytest.approx(0.5 / 3 + 0.5 * 0.65)
    assert float(m.variance) == pytest.approx(0.5 + 0.5 * 0.125)


# --- AdaMatch -------------------------------------------------------------------------------
def test_adamatch_relative_threshold_and_labeled_prediction_alignment():
    m = method("adamatch", threshold=0.9)
    assert m.pseudo_label_adjustment.dist_align == "labeled_predictions"
    logits_l = torch.tensor([[math.log(0.9), math.log(0.05), math.log(0.05)],
                             [math.log(0.7), math.log(0.2), math.log(0.1)]])  # mean confidence 0.8
    weights = m.confidence_weights(torch.tensor([[0.75, 0.2, 0.05], [0.1, 0.2, 0.7]]), None, logits_l)
    assert weights.tolist() == [1.0, 0.0]  # cut-off 0.9 x 0.8 = 0.72


# --- Dash -----------------------------------------------------------------------------------
def test_dash_threshold_schedule_and_selection():
    from mentor.methods.dash import dash_rho

    assert dash_rho(0, 2.0) == pytest.approx(1.0001 * 2.0)
    assert dash_rho(3, 2.0) == pytest.approx(1.0001 * 1.27 ** -3 * 2.0)
    assert dash_rho(50, 2.0) == 0.05
    m = method("dash", supervised_steps=2, stage_steps=1)
    before = [p.detach().clone() for p in m.models.parameters()]
    out = m.step(probs_batch([[0.5, 0.3, 0.2]]))
    assert "loss_u" not in out  # the warm-up trains on labels alone
    m.step_index = 2
    m.rho_hat = 1.0
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]])
    # soft targets while rho > rho_min: CE(sharpen(q, 0.5), q) against rho = 1.0001
    sharp = probs ** 2 / (probs ** 2).sum(-1, keepdim=True)
    losses = -(sharp * probs.log()).sum(-1)
    assert m.confidence_weights(probs, None, None).tolist() == [float(v <= 1.0001) for v in losses.tolist()]
    assert losses[0] < 1.0001 < losses[1]
    m.step_index = 100  # rho at its floor: hard labels, loss -log max q <= 0.05
    assert m.unlabeled_targets(probs).tolist() == [0, 0]
    assert m.confidence_weights(probs, None, None).tolist() == [0.0, 0.0]
    assert any(not torch.equal(a, b) for a, b in zip(before, m.models.parameters()))


# --- SimMatch -------------------------------------------------------------------------------
def test_simmatch_unfolded_and_aggregated_labels_for_a_given_bank():
    from mentor.methods.simmatch import unfold_and_aggregate

    probs = torch.tensor([[0.8, 0.2]])
    similarity = torch.tensor([[1.0, 0.0, 0.5]])
    labels = torch.tensor([0, 1, 1])
    unfolded, aggregated = unfold_and_aggregate(probs, similarity, labels, temperature=1.0, alpha=0.9)
    e = [math.exp(1.0), 1.0, math.exp(0.5)]
    t = [v / sum(e) for v in e]
    u = [t[0] * 0.8, t[1] * 0.2, t[2] * 0.2]
    assert unfolded[0].tolist() == pytest.approx([v / sum(u) for v in u])
    assert aggregated[0].tolist() == pytest.approx([0.9 * 0.8 + 0.1 * t[0], 0.9 * 0.2 + 0.1 * (t[1] + t[2])])


def test_simmatch_bank_takes_the_labeled_projections():
    from mentor.methods.base import LabeledPool

    m = method("simmatch", factory=partial(MLP, (3,), 3, hidden=(4,)), proj_dim=2, bank_momentum=0.5)
    m.labeled_pool = LabeledPool(torch.zeros(3, 3), torch.tensor([0, 1, 2]), lambda x: x, lambda x, g: x)
    m._init_bank(torch.device("cpu"))
    old = m.bank.clone()
    new = F.normalize(torch.tensor([[1.0, 0.0]]), dim=-1)
    m.update_bank(new, torch.tensor([2]), torch.tensor([2]))
    assert torch.equal(m.bank[:2], old[:2])
    assert m.bank[2].tolist() == pytest.approx(F.normalize(0.5 * old[2] + 0.5 * new[0], dim=0).tolist())


# --- CoMatch --------------------------------------------------------------------------------
def test_comatch_graph_and_memory_smoothing():
    from mentor.methods.comatch import pseudo_label_graph, smooth_with_memory

    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    graph = pseudo_label_graph(probs, threshold=0.7)
    # q q^T: (0,1) = 0.74 kept, (0,2) = 0.18 and (1,2) = 0.26 cut, self-loops 1; rows normalised
    assert graph[0].tolist() == pytest.approx([1 / 1.74, 0.74 / 1.74, 0.0])
    assert graph[2].tolist() == pytest.approx([0.0, 0.0, 1.0])
    z = torch.tensor([[1.0, 0.0]])
    queue_z, queue_p = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    smoothed = smooth_with_memory(torch.tensor([[0.5, 0.5]]), z, queue_z, queue_p, temperature=1.0, alpha=0.5)
    a = math.exp(1) / (math.exp(1) + 1)
    assert smoothed[0].tolist() == pytest.approx([0.25 + 0.5 * a, 0.25 + 0.5 * (1 - a)])


# --- DeFixMatch, ReFixMatch, SequenceMatch, CRMatch ------------------------------------------
def test_defixmatch_subtracts_the_same_loss_on_labeled_examples():
    m = method("defixmatch", threshold=0.5)
    x = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    strong = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # the labeled batch is the unlabeled batch: the debiasing term cancels the unsupervised one
    out = m.loss(Batch(x, torch.tensor([0, 1]), x, strong, x_l_strong=strong))
    assert float(out.logs["loss_u"]) == pytest.approx(float(out.logs["loss_debias"])) and float(out.logs["loss_u"]) > 0
    expected_l = 0.5 * (F.cross_entropy(x, torch.tensor([0, 1])) + F.cross_entropy(strong, torch.tensor([0, 1])))
    assert float(out.loss.detach()) == pytest.approx(float(expected_l), rel=1e-6)
    assert METHODS.get("defixmatch").labeled_strong_view


def test_refixmatch_learns_from_low_confidence_predictions_by_kl():
    weak = torch.tensor([[0.5, 0.3, 0.2]]).log()
    strong = torch.tensor([[0.0, 1.0, 0.0]])
    batch = Batch(torch.zeros(1, 3), torch.tensor([0]), weak, strong)
    out = method("refixmatch", threshold=0.95).loss(batch)
    q = torch.tensor([0.5, 0.3, 0.2])
    kl = float((q * (q.log() - F.log_softmax(strong[0], -1))).sum())
    assert float(out.logs["loss_u"]) == 0.0 and float(out.logs["loss_kl"]) == pytest.approx(kl, rel=1e-5)
    assert float(method("refixmatch", threshold=0.95, kl_on="confident").loss(batch).logs["loss_kl"]) == 0.0
    with pytest.raises(ConfigError, match="kl_on"):
        method("refixmatch", kl_on="some")


def test_sequencematch_chains_weak_medium_strong_with_sharpened_logit_targets():
    m = method("sequencematch")
    m.num_unlabeled = 1
    weak, medium, strong = (torch.tensor([v]) for v in ([2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.0]))
    out = m.loss(Batch(torch.zeros(1, 3), torch.tensor([0]), weak, strong, idx_u=torch.tensor([0]), x_u_medium=medium))

    def kl(target_logits, logits):
        p = F.softmax(target_logits / 0.5, -1)  # the paper's sharpening of logits, not USB's of probabilities
        return float((p * (p.log() - F.log_softmax(logits, -1))).sum())

    expected = kl(weak, medium) + kl(medium, strong) + kl(weak, strong)  # the first step trusts everything
    assert float(out.logs["loss_kl"]) == pytest.approx(expected, rel=1e-5)
    assert METHODS.get("sequencematch").medium_view


def test_crmatch_heads_rotation_and_feature_distance():
    from mentor.methods.crmatch import all_rotations
    from mentor.models import create_model

    x = torch.arange(8.0).view(2, 1, 2, 2)
    rotated, labels = all_rotations(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and torch.equal(rotated[2], torch.rot90(x[0], 1, (1, 2)))
    factory = partial(create_model, "small_cnn", (3, 8, 8), 3)
    factory.input_shape = (3, 8, 8)
    m = method("crmatch", factory=factory, threshold=0.0)
    assert set(m.models) == {"model", "distance_head", "rotation_head"}
    images = torch.randn(4, 3, 8, 8)
    out = m.loss(Batch(images[:2], torch.tensor([0, 1]), images, images + 0.3))
    assert {"loss_rotation", "loss_distance"} <= set(out.logs) and float(out.logs["loss_distance"]) >= 0
    features_only = method("crmatch", factory=partial(MLP, (3,), 3, hidden=(4,)))
    assert "rotation_head" not in features_only.models  # no rotation of feature vectors


# --- the shared options ----------------------------------------------------------------------
def test_distribution_alignment_and_debiasing_by_hand():
    adjust = PseudoLabelAdjustment(2, dist_align="labeled", dist_align_window=2)
    q = torch.tensor([[0.5, 0.5], [0.7, 0.3]])  # batch mean (0.6, 0.4)
    out = adjust(q, label_frequencies=lambda: torch.tensor([0.8, 0.2]))
    r = torch.tensor([0.8 / 0.6, 0.2 / 0.4])
    torch.testing.assert_close(out, q * r / (q * r).sum(-1, keepdim=True))
    debias = PseudoLabelAdjustment(2, debias=1.0, debias_momentum=0.5)
    out = debias(torch.tensor([[0.9, 0.1], [0.7, 0.3]]))  # p^ = 0.5 (0.5, 0.5) + 0.5 (0.8, 0.2)
    p_hat = torch.tensor([0.65, 0.35])
    expected = torch.tensor([[0.9, 0.1], [0.7, 0.3]]) / p_hat
    torch.testing.assert_close(out, expected / expected.sum(-1, keepdim=True))
    assert PseudoLabelAdjustment(2, dist_align=True).dist_align == "labeled"
    with pytest.raises(ConfigError, match="dist_align"):
        PseudoLabelAdjustment(2, dist_align="median")
    with pytest.raises(ConfigError, match="debias"):
        PseudoLabelAdjustment(2, debias=-1)


def test_the_logit_form_adjusts_the_softmax_as_the_probability_form():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    a = method("fixmatch", dist_align="uniform", debias=0.4)
    b = method("fixmatch", dist_align="uniform", debias=0.4)
    by_probs = a.adjust_pseudo_labels(F.softmax(logits / 0.4, -1))
    by_logits = F.softmax(b.adjust_pseudo_label_logits(logits, temperature=0.4) / 0.4, -1)
    torch.testing.assert_close(by_probs, by_logits)


@pytest.mark.parametrize("name", ["fixmatch", "uda", "meta_pseudo_labels", "mixmatch", "online_pseudo_label",
                                  "flexmatch", "simmatch"])
def test_every_pseudo_labelling_method_takes_the_shared_options(name):
    m = create_method(name, partial(MLP, (3,), 3, hidden=(4,)), 3, dist_align="true", debias=0.4)
    assert m.hparams["dist_align"] == "labeled" and m.hparams["debias"] == 0.4
    assert m.pseudo_label_adjustment.active
    with pytest.raises(ConfigError, match="dist_align"):
        create_method("supervised", partial(MLP, (3,), 3), 3, dist_align="true")


@pytest.mark.parametrize("name,options,named", [("simmatch", {"proj_dim": 0}, "proj_dim"),
                                                ("comatch", {"proj_dim": 0}, "proj_dim"),
                                                ("freematch", {"momentum": 1.5}, "momentum"),
                                                ("softmatch", {"momentum": -0.1}, "momentum"),
                                                ("dash", {"gamma": 1.0}, "gamma")])
def test_bad_options_are_named(name, options, named):
    with pytest.raises(ConfigError, match=named):
        create_method(name, partial(MLP, (3,), 3, hidden=(4,)), 3, **options)


def test_dist_align_blocks_capture_and_names_why():
    assert method("fixmatch").capture_blocker() is None
    assert "dist_align" in method("fixmatch", dist_align="uniform").capture_blocker()


@pytest.mark.parametrize("name,options", [("fixmatch", {"threshold": 0.0, "dist_align": "labeled", "debias": 0.4}),
                                          ("meta_pseudo_labels", {"dist_align": "labeled"}),
                                          ("uda", {"threshold": 0.0, "debias": 0.5})])
def test_the_shared_options_change_training_and_resume_exactly(name, options, tiny_dataset, tmp_path):
    plain = Trainer(tiny_config(name), dataset=tiny_dataset)
    plain.fit()
    straight = Trainer(tiny_config(name, out=str(tmp_path / "a"), method_options=options), dataset=tiny_dataset)
    straight.fit()
    changed = any(not torch.equal(v, straight.method.models.state_dict()[k])
                  for k, v in plain.method.models.state_dict().items())
    assert changed
    killed = Trainer(tiny_config(name, out=str(tmp_path / "b"), method_options=options), dataset=tiny_dataset)
    die_at_draw(killed, 5)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = Trainer(tiny_config(name, out=str(tmp_path / "b"), method_options=options), dataset=tiny_dataset)
    resumed.fit(resume=True)
    for k, v in straight.method.models.state_dict().items():
        assert torch.equal(v, resumed.method.models.state_dict()[k]), k
    state = resumed.method.state_dict()["pseudo_labels"]
    assert state is not None and (state["model"]["value"] is not None or state["debias"]["value"] is not None)
