"""Label Propagation for deep semi-supervised learning: pseudo labels diffused over a k-NN graph
of the network's own features, refreshed as it trains on them.

Source: Iscen et al. 2019, "Label Propagation for Deep Semi-supervised Learning" (survey seed
004, "Label propagation"; REFERENCES.md "Other methods"), and its public code. Every
``refresh_every`` steps after ``start_steps`` of labeled-only training:
1. Features v_i: the input of the classifier, in eval mode on clean inputs, L2-normalised, for
   every labeled and unlabeled example (a labeled example in the unlabeled pool too appears
   twice; its copies lie together and agree).
2. Graph: a_ij = [v_i . v_j]_+ ^ gamma for the k nearest neighbours j of i (paper: k = 50, gamma = 3),
   W = A + A^T, self-loops removed, W_n = D^-1/2 W D^-1/2.
3. Diffusion: for each class c, solve (I - alpha W_n) z_c = y_c by conjugate gradient (SciPy;
   alpha = 0.99, 20 iterations), y_c = 1 / |L_c| on the labeled examples of class c.
4. Pseudo label of unlabeled i: argmax of z_i (negatives clipped, rows L1-normalised); weight
   omega_i = 1 - H(z_i) / log C, divided by its maximum; class weight zeta_c = (N / C) /
   |{i: pseudo label c}| (balances the classes).
Training (every step): CE on the labeled batch + ``unlabeled_weight`` x the mean over the
unlabeled batch of omega_i zeta_{y_i} CE(y_i, f(u_i)). The k-NN search is a chunked matrix
product and top-k on the training device (the public code uses faiss, not a dependency here).

Default ``k=10`` in place of the paper's 50 (chosen on a validation split, bench/mpl.py
ablation): k = 50 was level with supervised training on digits (1,500 nodes) and on
Fashion-MNIST-1000; k = 10 gave +4.7 points on digits and the same on Fashion-MNIST.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.layers import features_and_logits
from ..models.predict import eval_batches
from ..options import COUNT, POSITIVE, STEPS, WEIGHT, Range
from ..registry import METHODS
from .base import Method, StepOutput, resolve_steps, upcast


def embed(model, transform, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """L2-normalised classifier-input features of stored examples, in eval mode on clean inputs."""
    features = eval_batches(model, transform, x, x.device, batch_size,
                            forward=lambda m, inputs: features_and_logits(m, inputs)[0].flatten(1))
    return F.normalize(features, dim=1)


@torch.no_grad()
def knn_graph(features: torch.Tensor, k: int, gamma: float, chunk: int = 2048) -> scipy.sparse.csr_matrix:
    """Symmetric k-NN affinity W = A + A^T, a_ij = max(v_i . v_j, 0)^gamma, without self-loops."""
    n = len(features)
    k = min(k, n - 1)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        sims = features[start:start + chunk] @ features.T
        sims[torch.arange(len(sims)), torch.arange(start, start + len(sims))] = -math.inf  # no self-loop
        top, idx = sims.topk(k, dim=1)
        rows.append(torch.arange(start, start + len(sims)).repeat_interleave(k))
        cols.append(idx.reshape(-1).cpu())
        vals.append(top.clamp_min(0).pow(gamma).reshape(-1).cpu())
    a = scipy.sparse.csr_matrix((torch.cat(vals).double().numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())),
                                shape=(n, n))
    return (a + a.T).tocsr()


def diffuse(w: scipy.sparse.csr_matrix, labeled: np.ndarray, labels: np.ndarray, num_classes: int,
            alpha: float = 0.99, iterations: int = 20) -> np.ndarray:
    """Z (N, C): per class c, (I - alpha D^-1/2 W D^-1/2) z_c = y_c solved by conjugate gradient,
    y_c = 1 / |L_c| on the labeled nodes of class c."""
    degree = np.asarray(w.sum(axis=1)).reshape(-1)
    degree[degree == 0] = 1
    d = scipy.sparse.diags(1.0 / np.sqrt(degree))
    a = scipy.sparse.eye(w.shape[0]) - alpha * (d @ w @ d)
    z = np.zeros((w.shape[0], num_classes))
    for c in range(num_classes):
        members = labeled[labels == c]
        if len(members) == 0:
            continue
        y = np.zeros(w.shape[0])
        y[members] = 1.0 / len(members)
        z[:, c], _ = scipy.sparse.linalg.cg(a, y, rtol=1e-6, maxiter=iterations)
    return z


def propagation_targets(z: np.ndarray, num_classes: int):
    """(pseudo labels, entropy weights omega in [0, 1], class weights zeta) from the diffusion Z."""
    p = np.clip(z, 0, None)
    p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    omega = 1 - entropy / math.log(num_classes)
    omega = omega / max(omega.max(), 1e-12)
    labels = p.argmax(axis=1)
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    zeta = (len(labels) / num_classes) / np.clip(counts, 1, None)
    return labels, omega, zeta


@METHODS.register("label_propagation")
class LabelPropagation(Method):
    name = "label_propagation"
    option_ranges = {"k": COUNT, "gamma": POSITIVE, "alpha": Range(0, 1, low_open=True, high_open=True),
                     "cg_iterations": COUNT, "start_steps": STEPS, "refresh_every": STEPS, "unlabeled_weight": WEIGHT}
    needs_pool_in_memory = "builds a nearest-neighbour graph over the whole pool"
    strong_view = "unused"
    smoke_hparams = {"start_steps": 2, "refresh_every": 2, "k": 5}

    def __init__(self, model_factory, num_classes, seed=0, k: int = 10, gamma: float = 3.0, alpha: float = 0.99,
                 cg_iterations: int = 20, start_steps: float = 0.3, refresh_every=None, unlabeled_weight: float = 1.0):
        super().__init__(model_factory, num_classes, seed)
        if int(k) < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
        self.k, self.gamma, self.alpha, self.cg_iterations = int(k), gamma, alpha, int(cg_iterations)
        self.start_steps, self.refresh_every, self.unlabeled_weight = start_steps, refresh_every, unlabeled_weight
        self.models["model"] = model_factory()
        self.pseudo_labels = self.weights = None  # per unlabeled pool position, on the device
        self.refreshed_at = -1

    def setup(self, total_steps):
        super().setup(total_steps)
        self.start_steps = resolve_steps("start_steps", self.start_steps, total_steps)
        if self.refresh_every is not None:  # None: one pass over the unlabeled pool, known at the first batch
            self.refresh_every = resolve_steps("refresh_every", self.refresh_every, total_steps)
            if self.refresh_every < 1:
                raise ConfigError("refresh_every must be at least one step")
        self.hparams.update(start_steps=self.start_steps, refresh_every=self.refresh_every)

    def refresh(self) -> None:
        """Rebuilds the graph on the current features and diffuses the labels (steps 1-4 above)."""
        labeled, unlabeled = self.labeled_pool, self.unlabeled_pool
        if labeled is None or unlabeled is None:
            raise ConfigError("label_propagation builds its graph on the whole labeled and unlabeled sets; set "
                              "method.labeled_pool and method.unlabeled_pool (the Trainer does)")
        model = self.models["model"]
        features = torch.cat([embed(model, labeled.transform, labeled.x), embed(model, unlabeled.transform, unlabeled.x)])
        n_l = len(labeled.x)
        z = diffuse(knn_graph(features, self.k, self.gamma), np.arange(n_l), labeled.y.cpu().numpy(), self.num_classes,
                    self.alpha, self.cg_iterations)
        labels, omega, zeta = propagation_targets(z[n_l:], self.num_classes)
        device = labeled.y.device
        self.pseudo_labels = torch.as_tensor(labels, device=device)
        self.weights = torch.as_tensor(omega * zeta[labels], dtype=torch.float32, device=device)
        self.refreshed_at = self.step_index

    def loss(self, batch):
        model = self.models["model"]
        if self.step_index < self.start_steps:
            loss_l = F.cross_entropy(upcast(model(batch.x_l)), batch.y_l)
            return StepOutput(loss_l, {"loss_l": loss_l.detach()})
        if self.refresh_every is None:  # Iscen et al. refresh once per epoch
            self.refresh_every = self.hparams["refresh_every"] = max(1, math.ceil(self.num_unlabeled / len(batch.x_u)))
        if self.pseudo_labels is None or self.step_index - self.refreshed_at >= self.refresh_every:
            self.refresh()
            model.train()
        logits = upcast(model(torch.cat([batch.x_l, batch.x_u])))
        logits_l, logits_u = logits[:len(batch.x_l)], logits[len(batch.x_l):]
        loss_l = F.cross_entropy(logits_l, batch.y_l)
        idx = batch.idx_u.to(self.pseudo_labels.device)
        weights = self.weights[idx]
        loss_u = (weights * F.cross_entropy(logits_u, self.pseudo_labels[idx], reduction="none")).mean()
        return StepOutput(loss_l + self.unlabeled_weight * loss_u,
                          {"loss_l": loss_l.detach(), "loss_u": loss_u.detach(), "pseudo_label_weight": weights.mean()})

    def extra_state(self):
        if self.pseudo_labels is None:
            return {}
        return {"pseudo_labels": self.pseudo_labels.cpu(), "weights": self.weights.cpu(), "refreshed_at": self.refreshed_at}

    def load_extra_state(self, state):
        if state:
            device = next(self.models["model"].parameters()).device
            self.pseudo_labels, self.weights = state["pseudo_labels"].to(device), state["weights"].to(device)
            self.refreshed_at = int(state["refreshed_at"])
