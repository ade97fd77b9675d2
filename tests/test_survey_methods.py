"""Rule tests of the survey's methods on hand-checkable values: MixMatch, ReMixMatch, DivideMix
(and --label-noise), online Pseudo-Label, Label Propagation, distillation with unlabeled data."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from mentor.data.splits import Split, add_label_noise
from mentor.errors import ConfigError, DataError
from mentor.losses import sharpen
from mentor.methods import create_method
from mentor.methods.divide_mix import clean_probability, prior_penalty, refine_labels
from mentor.methods.label_propagation import diffuse, knn_graph, propagation_targets
from mentor.methods.mixmatch import guess_labels, mix_batches
from mentor.methods.online_pseudo_label import oversample
from mentor.methods.alignment import align_distribution
from mentor.methods.remixmatch import rotate_each
from mentor.models import ModelFactory
from mentor.models.layers import features_and_logits
from mentor.models.predict import predict
from mentor.train import TrainConfig, Trainer

from conftest import blobs, tiny_config
from test_image_training import image_config, tiny_images


class FixedProbs(nn.Module):
    """Returns log(probs[i]) for the i-th call: a model whose predictions a test chooses."""

    def __init__(self, *probs):
        super().__init__()
        self.probs, self.calls = [torch.tensor(p) for p in probs], 0

    def forward(self, x):
        out = self.probs[self.calls % len(self.probs)].log().expand(len(x), -1)
        self.calls += 1
        return out


# --- MixMatch -------------------------------------------------------------------------------
def test_sharpen_and_mixmatch_label_guess():
    assert torch.allclose(sharpen(torch.tensor([[0.6, 0.4]]), 0.5), torch.tensor([[0.36 / 0.52, 0.16 / 0.52]]))
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    assert torch.allclose(sharpen(torch.softmax(logits, -1), 0.4), torch.softmax(logits / 0.4, -1), atol=1e-6)
    # two views: [0.8, 0.2] and [0.6, 0.4] -> mean [0.7, 0.3] -> sharpened [0.49, 0.09] / 0.58
    q = guess_labels(FixedProbs([0.8, 0.2], [0.6, 0.4]), [torch.zeros(2, 1), torch.zeros(2, 1)], 0.5)
    assert torch.allclose(q, torch.tensor([[0.49 / 0.58, 0.09 / 0.58]] * 2), atol=1e-6)


def test_mixmatch_mixup_keeps_each_example_closest_to_itself():
    eye = torch.eye(10)
    (a, b), (ta, tb) = mix_batches([eye[:4], eye[4:]], [eye[:4], eye[4:]], 0.75, torch.Generator().manual_seed(0))
    mixed, targets = torch.cat([a, b]), torch.cat([ta, tb])
    assert torch.equal(mixed, targets)  # inputs and targets mixed with the same partner and lam
    assert bool((mixed.diagonal() >= 0.5 - 1e-6).all())  # lam' = max(lam, 1 - lam): own weight >= 0.5
    assert torch.allclose(mixed.sum(1), torch.ones(10))
    partners = (mixed - torch.diag(mixed.diagonal())).argmax(1)
    assert sorted(partners[mixed.diagonal() < 1].tolist()) != []  # partners come from the whole union


# --- ReMixMatch -----------------------------------------------------------------------------
def test_distribution_alignment_and_rotations():
    aligned = align_distribution(torch.tensor([[0.5, 0.5], [0.2, 0.8]]), torch.tensor([0.8, 0.2]),
                                 torch.tensor([0.5, 0.5]))
    assert torch.allclose(aligned, torch.tensor([[0.8, 0.2], [0.5, 0.5]]))
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3).repeat(4, 1, 1, 1)
    rotated, k = rotate_each(x, torch.Generator().manual_seed(0))
    for i in range(len(x)):
        assert torch.equal(rotated[i], torch.rot90(x[i], int(k[i]), dims=(1, 2)))
    assert len(set(k.tolist())) > 1


def test_remixmatch_rotation_head_for_square_images_only_and_it_learns():
    images = create_method("remixmatch", ModelFactory("small_cnn", (3, 8, 8), 3, widths=[4, 8]), 3)
    assert isinstance(images.models["rotation_head"], nn.Linear) and images.models["rotation_head"].in_features == 8
    assert "rotation_head" not in create_method("remixmatch", ModelFactory("mlp", (4,), 3), 3).models
    trainer = Trainer(image_config("remixmatch", steps=3, eval_every=0), dataset=tiny_images())
    head = {k: v.clone() for k, v in trainer.method.models["rotation_head"].state_dict().items()}
    logs = []
    step = trainer.method.step
    trainer.method.step = lambda batch: logs.append(step(batch)) or logs[-1]
    trainer.fit()
    assert all(math.isfinite(float(s["loss_rotation"])) and float(s["loss_rotation"]) > 0 for s in logs)
    assert not torch.equal(head["weight"], trainer.method.models["rotation_head"].weight)
    assert len(trainer.method.model_marginal.history) == 3  # one batch mean per step for p~(y)


def test_features_are_the_classifier_input():
    model = ModelFactory("mlp", (4,), 3, hidden=[5])()
    x = torch.randn(2, 4)
    features, logits = features_and_logits(model, x)
    assert features.shape == (2, 5) and torch.allclose(logits, model.net[-1](features))


# --- online Pseudo-Label ------------------------------------------------------------------------
def test_online_pseudo_label_oversampling_and_ramp():
    x, y = torch.arange(3.0)[:, None], torch.tensor([0, 1, 2])
    xo, yo = oversample(x, y, 7)
    assert yo.tolist() == [0, 1, 2, 0, 1, 2, 0] and torch.equal(xo.squeeze(1), yo.float())
    assert oversample(x, y, 2)[1].tolist() == [0, 1, 2]
    method = create_method("online_pseudo_label", ModelFactory("mlp", (4,), 3), 3, start_steps=10, ramp_steps=20,
                           unlabeled_weight=3.0)
    method.setup(100)
    weights = []
    for t in (5, 10, 20, 30, 60):
        method.step_index = t
        weights.append(method.weight())
    assert weights == [0.0, 0.0, 1.5, 3.0, 3.0]  # Lee: 0 before T1, then linear to alpha_f
    with pytest.raises(ConfigError, match="labels"):
        create_method("online_pseudo_label", ModelFactory("mlp", (4,), 3), 3, labels="argmax")


# --- Label Propagation ----------------------------------------------------------------------
def test_knn_graph_diffusion_and_weights_by_hand():
    v = nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    w = knn_graph(v, k=1, gamma=3.0).toarray()
    s = float(v[0] @ v[1]) ** 3
    assert np.allclose(w, [[0, 2 * s, 0, 0], [2 * s, 0, 0, 0], [0, 0, 0, 2 * s], [0, 0, 2 * s, 0]])  # W = A + A^T
    z = diffuse(knn_graph(v, k=1, gamma=3.0), np.array([0, 2]), np.array([0, 1]), 2)
    labels, omega, zeta = propagation_targets(z, 2)
    assert labels.tolist() == [0, 0, 1, 1] and np.allclose(omega, 1.0)  # disconnected clusters: certain
    labels, omega, zeta = propagation_targets(np.array([[1.0, 0.0], [0.5, 0.5], [0.3, -0.1]]), 2)
    assert labels.tolist() == [0, 0, 0] and np.allclose(omega, [1.0, 0.0, 1.0])  # entropy weights, negatives clipped
    assert np.allclose(zeta, [(3 / 2) / 3, (3 / 2) / 1])  # (N / C) / |class|, empty classes counted as 1


def test_label_propagation_agrees_with_the_clusters():
    dataset = blobs(n_train=90, n_extra=60)
    trainer = Trainer(tiny_config("label_propagation", steps=40, method_options={"start_steps": 30, "k": 10},
                                  eval_every=0), dataset=dataset)
    trainer.fit()
    method = trainer.method
    assert method.refreshed_at >= 30 and method.hparams["refresh_every"] >= 1
    truth = np.concatenate([dataset.y_train, np.zeros(60, int)])[np.asarray(trainer.split.unlabeled)]
    in_train = np.asarray(trainer.split.unlabeled) < len(dataset.y_train)
    agree = (method.pseudo_labels.numpy()[in_train] == truth[in_train]).mean()
    assert agree > 0.8 and 0 < float(method.weights.max())  # chance: 1 / 3


# --- DivideMix and label noise --------------------------------------------------------------
def test_co_divide_refinement_and_prior_by_hand():
    p = clean_probability(np.array([0.01, 0.02, 0.03, 2.0, 2.1, 2.2]), seed=0)
    assert (p[:3] > 0.9).all() and (p[3:] < 0.1).all()
    assert np.allclose(clean_probability(np.ones(4), 0), 1.0)
    y, own = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.2, 0.8]])
    assert torch.allclose(refine_labels(y, torch.tensor([1.0]), own, 0.5), y)
    assert torch.allclose(refine_labels(y, torch.tensor([0.0]), own, 0.5), sharpen(own, 0.5))
    assert torch.allclose(refine_labels(y, torch.tensor([0.5]), own, 1.0), torch.tensor([[0.6, 0.4]]))
    assert float(prior_penalty(torch.zeros(4, 3))) == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.tensor([[10.0, 0.0, 0.0]] * 4)
    assert float(prior_penalty(collapsed)) > 1.0


def test_label_noise_is_seeded_recorded_and_applied():
    y = np.arange(200) % 4
    split = Split(list(range(0, 200, 2)), [], 0, "balanced")
    add_label_noise(split, y, 4, 0.4, "symmetric", seed=3)
    again = add_label_noise(Split(list(range(0, 200, 2)), [], 0, "balanced"), y, 4, 0.4, "symmetric", seed=3)
    assert len(split.noisy) == 40 and split.noisy == again.noisy and split.noisy_labels == again.noisy_labels
    assert set(split.noisy) <= set(split.labeled)
    noisy_y = split.labels(y)
    changed = np.asarray(split.labeled)[noisy_y != y[split.labeled]]
    assert set(changed) <= set(split.noisy) and 0 < len(changed) < 40  # uniform redraws keep some true labels
    flip = add_label_noise(Split(list(range(200)), [], 0, "balanced"), y, 4, 0.25, "asymmetric", seed=0)
    assert all(new == (y[i] + 1) % 4 for i, new in zip(flip.noisy, flip.noisy_labels))
    with pytest.raises(DataError, match="noise kind"):
        add_label_noise(split, y, 4, 0.4, "pairwise", seed=0)


def test_trainer_trains_on_the_noisy_labels_and_saves_them(tmp_path):
    dataset = blobs(n_train=90)
    trainer = Trainer(tiny_config("supervised", num_labeled=60, label_noise=0.5, noise_kind="asymmetric",
                                  out=str(tmp_path)), dataset=dataset)
    labeled = np.asarray(trainer.split.labeled)
    seen = trainer.stream.y_l.numpy()
    assert (seen != dataset.y_train[labeled]).sum() == 30
    trainer.fit()
    saved = Split.load(str(tmp_path / "split.json"))
    assert saved.noisy == trainer.split.noisy and np.array_equal(saved.labels(dataset.y_train), seen)
    with pytest.raises(ConfigError, match="label_noise"):
        TrainConfig(label_noise=1.5).validate()


def test_divide_mix_finds_the_noisy_labels():
    dataset = blobs(n_train=150, dim=8)
    config = tiny_config("divide_mix", num_labeled=120, label_noise=0.4, steps=52, batch_size=24, eval_every=0,
                         method_options={"warmup_steps": 50, "divide_every": 100})
    trainer = Trainer(config, dataset=dataset)
    trainer.fit()
    split = trainer.split
    wrong = split.labels(dataset.y_train) != dataset.y_train[split.labeled]
    assert 30 < wrong.sum() < 48  # 40% redrawn uniformly over 3 classes: about 32 wrong
    for name in ("net1", "net2"):
        w = trainer.method.division[name].numpy()  # P(clean) from the other network's losses
        assert w[~wrong].mean() > 0.9 and w[wrong].mean() < 0.2, (name, w[~wrong].mean(), w[wrong].mean())
    ensemble = trainer.method.eval_model()
    x = torch.as_tensor(dataset.x_test)
    mean = torch.stack([torch.softmax(trainer.method.models[n](x), -1) for n in ("net1", "net2")]).mean(0)
    assert torch.allclose(ensemble(x).exp(), mean, atol=1e-5)


# --- distillation ---------------------------------------------------------------------------
def test_distillation_from_a_teacher_run(tmp_path):
    teacher_dir = str(tmp_path / "teacher")
    Trainer(TrainConfig(dataset="two_moons", num_labeled=10, steps=30, seed=0, device="cpu", out=teacher_dir,
                        progress=False, model_options={"hidden": [32, 32]}, eval_every=0)).fit()
    config = TrainConfig(method="distillation", dataset="two_moons", num_labeled=10, steps=4, seed=0, device="cpu",
                         progress=False, eval_every=0, model_options={"hidden": [4]},
                         method_options={"teacher": teacher_dir, "temperature": 2.0})
    student = Trainer(config)
    assert set(student.method.models) == {"student"}  # no teacher phase and no teacher model
    student.fit()
    from mentor.train import load_run
    teacher = load_run(teacher_dir, device="cpu")
    pool = student.method.unlabeled_pool
    expected = sharpen(predict(teacher.method.eval_model(), teacher.views.eval, pool.x, "cpu", 256), 2.0)
    assert torch.allclose(student.method.teacher_probs, expected, atol=1e-6)
    assert len(student.method.selected) == len(pool.x)  # every unlabeled example once, no filter
    with pytest.raises(DataError, match="checkpoint"):
        create_method("distillation", ModelFactory("mlp", (2,), 2), 2, teacher=str(tmp_path / "nothing"))


def test_distillation_in_run_teacher_is_wider_and_each_phase_has_its_schedule():
    config = tiny_config("distillation", steps=10, lr=0.1, schedule="cosine", model_options={"hidden": [8]},
                         method_options={"teacher_steps": 4})
    trainer = Trainer(config, dataset=blobs())
    method = trainer.method
    assert method.models["teacher"].net[1].out_features == 32 and method.models["student"].net[1].out_features == 8
    teacher_lr, student_lr = trainer.schedulers["teacher"], trainer.schedulers["student"]
    rates = []
    for _ in range(10):
        rates.append((teacher_lr.get_last_lr()[0], student_lr.get_last_lr()[0]))
        method.step(trainer.stream.next())
        teacher_lr.step()
        student_lr.step()
    # the teacher's cosine runs over steps 0-3 and the student's restarts at the full rate at step 4
    assert rates[0][0] == pytest.approx(0.1) and rates[3][0] < 0.02
    assert rates[4][1] == pytest.approx(0.1) and rates[9][1] < 0.01
    equal = Trainer(tiny_config("distillation", steps=10, method_options={"teacher_steps": 4, "teacher_width": 1,
                                                                          "phase_schedule": False}), dataset=blobs())
    assert equal.method.models["teacher"].net[1].out_features == 8
    assert equal.schedulers["student"].lr_lambdas[0](4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4)))
