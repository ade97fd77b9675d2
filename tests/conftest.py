import sys

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mentor.data import ArrayDataset
from mentor.registry import METHODS
from mentor.train import TrainConfig


def blobs(n_train=60, n_test=30, n_extra=40, classes=3, dim=4, seed=0):
    """A tiny, separable problem: Gaussian blobs, plus extra unlabeled rows."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, dim))

    def draw(n):
        y = np.arange(n) % classes
        return (centers[y] + rng.normal(0, 1, (n, dim))).astype(np.float32), y

    x, y = draw(n_train)
    xt, yt = draw(n_test)
    xu, _ = draw(n_extra)
    return ArrayDataset("blobs", x, y, xt, yt, classes, x_unlabeled=xu)


def patch_images(count, rng, classes=3, size=8):
    """(uint8 images, labels): class c is a bright patch in corner c of a dark noisy image."""
    y = np.arange(count) % classes
    x = rng.integers(0, 60, (count, 3, size, size))
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, :, r * size // 2:(r + 1) * size // 2, col * size // 2:(col + 1) * size // 2] += 180
    return x.astype(np.uint8), y


@pytest.fixture
def tiny_dataset():
    return blobs()


def tiny_config(method, out=None, **overrides):
    base = dict(method=method, num_labeled=9, model="mlp", model_options={"hidden": [8]}, steps=6,
                batch_size=6, unlabeled_batch_size=16, lr=0.05, momentum=0.9, eval_every=3,
                strong_noise=0.2, input_noise=0.1, seed=0, device="cpu", out=out, progress=False,
                unlabeled_pool="rest")
    if method in METHODS:
        base["method_options"] = dict(METHODS.get(method).smoke_hparams)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)


class HostReads(TorchDispatchMode):
    """Records aten ops that read device values on the host or give data-dependent shapes:
    each one is a device sync on CUDA and cannot live in a CUDA graph."""
    SYNCING = {"_local_scalar_dense", "nonzero", "unique", "_unique", "_unique2", "unique_dim",
               "unique_consecutive", "masked_select", "is_nonzero", "equal"}

    def __init__(self):
        super().__init__()
        self.seen = []
        self._kornia_checks = []

    # kornia checks a tensor condition where it lives (kornia.core.check._check_async): on CUDA with
    # torch._assert_async, which reads nothing on the host; on the CPU by reading it, by design
    # (kornia >= 0.9.2). These tests stand for a GPU step, so inside the mode kornia takes its CUDA
    # branch on the CPU too; every other read is still recorded.
    def __enter__(self):
        check = sys.modules.get("kornia.core.check")
        original = getattr(check, "_check_async", None)
        if original is not None:
            def on_device(condition, msg, guard=False):
                torch._assert_async(condition, msg)

            self._kornia_checks = [(module, original) for module in list(sys.modules.values())
                                   if getattr(module, "__name__", "").startswith("kornia")
                                   and getattr(module, "_check_async", None) is original]
            for module, _ in self._kornia_checks:
                module._check_async = on_device
        return super().__enter__()

    def __exit__(self, *exc):
        for module, original in self._kornia_checks:
            module._check_async = original
        self._kornia_checks = []
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in self.SYNCING:
            self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class Identity(torch.nn.Module):
    """A 'model' whose logits are its input plus a learnable bias (so losses are hand-checkable)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return x + self.bias


def die_at_draw(trainer, draw: int) -> None:
    """The trainer's stream raises KeyboardInterrupt at its ``draw``-th batch, as a killed run."""
    original, calls = trainer.stream.next, {"n": 0}

    def dying_next():
        calls["n"] += 1
        if calls["n"] == draw:
            raise KeyboardInterrupt
        return original()

    trainer.stream.next = dying_next
