"""Views: how stored examples become the model inputs of one step.

A step needs up to three views: the labeled batch, the weak view of the unlabeled batch and
its strong view. Feature data (tabular rows, 2-D toys) uses them as stored, with Gaussian
noise as the strong view when asked. Images go uint8 -> [0, 1] -> augmentation ->
per-channel standardisation, all on the device the data lives on.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .images import RandAugment, flip_and_translate, to_unit
from .noise import GaussianNoise


class FeatureViews:
    """Labeled and weak views: the stored rows, plus Gaussian ``input_noise`` if set; strong view:
    the rows plus Gaussian ``strong_noise``."""

    def __init__(self, strong_noise: Optional[float] = None, input_noise: Optional[float] = None):
        self.strong_view = GaussianNoise(strong_noise) if strong_noise else None
        self.input_noise = GaussianNoise(input_noise) if input_noise else None

    @property
    def has_strong(self) -> bool:
        return self.strong_view is not None

    @property
    def noisy(self) -> bool:
        """Whether two draws of the weak view differ."""
        return self.input_noise is not None

    def labeled(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.input_noise(x, generator) if self.input_noise else x

    def weak(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.input_noise(x, generator) if self.input_noise else x

    def strong(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.strong_view(x, generator)

    def medium(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Between weak and strong (SequenceMatch): Gaussian noise of half the strong view's std."""
        return x + 0.5 * self.strong_view.std * torch.randn(x.shape, generator=generator, device=x.device,
                                                            dtype=x.dtype)

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ImageViews:
    """labeled and weak: flip (unless the dataset forbids it) + translate; strong: the weak view
    then RandAugment + Cutout (FixMatch). ``augment=False`` turns off weak augmentation;
    ``input_noise`` adds Gaussian noise of that std to the standardised labeled and weak views
    (the input noise of the Pi-model and Mean Teacher ConvNets, 0.15)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], hflip: bool = True,
                 translate: float = 0.125, randaugment: Optional[RandAugment] = None,
                 augment: bool = True, channels_last: bool = False, input_noise: Optional[float] = None):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.hflip, self.translate, self.augment = hflip, translate, augment
        self.randaugment = randaugment
        self._medium: Optional[RandAugment] = None  # built at the first medium view
        self.input_noise = GaussianNoise(input_noise) if input_noise else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @property
    def has_strong(self) -> bool:
        return self.randaugment is not None

    @property
    def noisy(self) -> bool:
        return self.augment or self.input_noise is not None

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean.device != x.device:  # moved once, not on every batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)

    def _weak_unit(self, x, generator):
        x = to_unit(x)
        return flip_and_translate(x, generator, self.hflip, self.translate) if self.augment else x

    def labeled(self, x, generator):
        return self.weak(x, generator)

    def weak(self, x, generator):
        x = self._finish(self._weak_unit(x, generator))
        return self.input_noise(x, generator) if self.input_noise else x

    def strong(self, x, generator):
        return self._finish(self.randaugment(self._weak_unit(x, generator), generator))

    def medium(self, x, generator):
        """Between weak and strong (SequenceMatch): the weak view then half of the strong view's
        RandAugment ops (at least one) and no Cutout."""
        if self._medium is None:
            ra = self.randaugment
            self._medium = RandAugment(ra.op_set, max(1, ra.num_ops // 2), 0.0, ra.magnitude, ra.static)
        return self._finish(self._medium(self._weak_unit(x, generator), generator))

    def eval(self, x):
        return self._finish(to_unit(x))


def channel_stats(x_uint8) -> tuple:
    """Per-channel mean and std in [0, 1] units of a uint8 (n, C, H, W) array (for standardising)."""
    import numpy as np

    # Sums over chunks of images: a float64 copy of the whole set (376 MB for Fashion-MNIST)
    # would dominate the memory of small runs and of `mentor pseudo-label`.
    channels = x_uint8.shape[1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(x_uint8), 4096):
        chunk = x_uint8[start:start + 4096].astype(np.float64)
        total += chunk.sum(axis=(0, 2, 3))
        squares += (chunk ** 2).sum(axis=(0, 2, 3))
        count += chunk[:, 0].size
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return tuple(float(v) / 255.0 for v in mean), tuple(float(max(v / 255.0, 1e-3)) for v in std)


class CachedViews:
    """Views of examples stored as their cached embeddings (mentor.embedding): each stored example
    is a (1 + weak + strong, dim) stack of the clean image's embedding, ``weak`` embeddings of
    weakly augmented copies (flip + translate) and ``strong`` of strongly augmented ones
    (RandAugment + Cutout). A view picks one cached embedding per example at random (seeded):
    the augmentation was paid for once, when the cache was made. The test split is stored with
    its clean embedding only, (n, 1, dim). ``input_noise`` adds Gaussian noise to labeled and
    weak views, as for feature data."""

    def __init__(self, weak: int, strong: int, input_noise: Optional[float] = None):
        self.num_weak, self.num_strong = int(weak), int(strong)
        self.input_noise = GaussianNoise(input_noise) if input_noise else None

    @property
    def has_strong(self) -> bool:
        return self.num_strong > 0

    @property
    def noisy(self) -> bool:
        return self.num_weak > 1 or self.input_noise is not None

    def _pick(self, x: torch.Tensor, first: int, count: int, generator: torch.Generator) -> torch.Tensor:
        if count == 0:
            return x[:, 0]
        choice = first + torch.randint(count, (len(x),), generator=generator, device=generator.device)
        return x[torch.arange(len(x), device=x.device), choice.to(x.device)]

    def labeled(self, x, generator):
        return self.weak(x, generator)

    def weak(self, x, generator):
        x = self._pick(x, 1, self.num_weak, generator)
        return self.input_noise(x, generator) if self.input_noise else x

    def strong(self, x, generator):
        return self._pick(x, 1 + self.num_weak, self.num_strong, generator)

    def medium(self, x, generator):
        """Between weak and strong (SequenceMatch), from what the cache holds: one of the weak and
        strong embeddings, drawn uniformly (no embedding of a medium augmentation is cached)."""
        return self._pick(x, 1, self.num_weak + self.num_strong, generator)

    def eval(self, x):
        return x[:, 0]
