"""Batched image augmentation on (B, C, H, W) float tensors in [0, 1], on whatever device they live.

Every random choice is drawn from the generator passed in (never the global RNG), so a run
is reproducible and resumable. The pixel kernels are kornia's; what is written here is what
kornia lacks: RandAugment with its ops drawn *per image* (kornia's RandAugment draws one op
sequence per batch, which is not RandAugment as FixMatch, UDA and MPL use it), the per-image
affine matrices of the geometric ops, SamplePairing, Cutout and the reflect-pad translation.

References: FixMatch (REFERENCES.md "FixMatch and UDA": weak = flip + shift, strong =
RandAugment with 2 ops of random magnitude, then Cutout); MPL appendix C.2, Table 5 (the op
sets; SVHN drops rotation and horizontal translation).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from kornia import enhance
from kornia.geometry.transform import warp_affine

from ..errors import ConfigError

OP_SETS: Dict[str, Tuple[str, ...]] = {
    # MPL appendix Table 5, "CIFAR-10 and ImageNet"
    "cifar": ("auto_contrast", "brightness", "color", "contrast", "equalize", "invert", "sharpness",
              "posterize", "sample_pairing", "solarize", "rotate", "shear_x", "shear_y",
              "translate_x", "translate_y"),
    # MPL appendix Table 5, "SVHN": no rotation, no horizontal translation, no SamplePairing
    "svhn": ("auto_contrast", "brightness", "color", "contrast", "equalize", "invert", "sharpness",
             "posterize", "solarize", "shear_x", "shear_y", "translate_y"),
}
UNSIGNED = ("posterize", "solarize", "sample_pairing")  # no change at magnitude 0, the most at 1
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")

# Magnitude m in [0, 1] per image -> op parameter (RandAugment's ranges, as in FixMatch).
MAX_ROTATE_DEG = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.3       # fraction of the image side
MAX_SAMPLE_PAIRING = 0.4  # blend weight of the partner image (AutoAugment)
FILL = 0.5                # gray, as PIL's fill (128) in FixMatch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]; float input is returned as is."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def _uniform(n: int, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device)


def _enhance_factor(m: torch.Tensor) -> torch.Tensor:
    return 0.1 + 1.8 * m  # PIL ImageEnhance factor in [0.1, 1.9]; 1 leaves the image as is


def _rgb_only(fn: Callable) -> Callable:
    """Colour saturation has no meaning on one channel: identity there."""
    def apply(x, m):
        return fn(x, m) if x.shape[1] == 3 else x
    return apply


COLOUR_OPS: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "auto_contrast": lambda x, m: enhance.normalize_min_max(x, 0.0, 1.0),
    "brightness": lambda x, m: enhance.adjust_brightness_accumulative(x, _enhance_factor(m)),
    "color": _rgb_only(lambda x, m: enhance.adjust_saturation_with_gray_subtraction(x, _enhance_factor(m))),
    "contrast": lambda x, m: enhance.adjust_contrast_with_mean_subtraction(x, _enhance_factor(m)),
    "equalize": lambda x, m: enhance.equalize(x),
    "invert": lambda x, m: enhance.invert(x),
    "sharpness": lambda x, m: enhance.sharpness(x, _enhance_factor(m)).clamp(0.0, 1.0),
    # 8 bits (no change) down to 4 bits
    "posterize": lambda x, m: enhance.posterize(x, (8 - (m * 4.999).floor()).to(torch.int64)),
    # threshold 1 (no change) down to 0 (full inversion)
    "solarize": lambda x, m: enhance.solarize(x, 1.0 - m),
}


def _affine_matrices(ops: torch.Tensor, m: torch.Tensor, names: Tuple[str, ...], height: int, width: int):
    """(B, 2, 3) matrices about the image centre for the geometric op of each image (identity for others)."""
    b = len(ops)
    signed = 2 * m - 1  # [-1, 1]: the direction of the op is random too
    eye = torch.eye(2, 3, device=m.device).expand(b, 2, 3).clone()
    cx, cy = (width - 1) / 2, (height - 1) / 2
    for name in GEOMETRIC:
        if name not in names:
            continue
        sel = ops == names.index(name)
        v = signed
        a = eye.clone()
        if name == "rotate":
            t = v * math.radians(MAX_ROTATE_DEG)
            cos, sin = torch.cos(t), torch.sin(t)
            a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = cos, -sin, sin, cos
            a[:, 0, 2] = cx - cos * cx + sin * cy
            a[:, 1, 2] = cy - sin * cx - cos * cy
        elif name == "shear_x":
            a[:, 0, 1] = v * MAX_SHEAR
            a[:, 0, 2] = -v * MAX_SHEAR * cy
        elif name == "shear_y":
            a[:, 1, 0] = v * MAX_SHEAR
            a[:, 1, 2] = -v * MAX_SHEAR * cx
        elif name == "translate_x":
            a[:, 0, 2] = v * MAX_TRANSLATE * width
        else:
            a[:, 1, 2] = v * MAX_TRANSLATE * height
        eye = torch.where(sel[:, None, None], a, eye)
    return eye


class RandAugment:
    """num_ops ops per image, each drawn uniformly from the op set, each with its own uniform
    random magnitude (FixMatch) or, with ``magnitude`` in [0, 1], that fraction of every op's
    maximum (Noisy Student's fixed magnitude); then Cutout of ``cutout`` x the image side
    (0.5: 16 px on 32 px). ``static``: the sync-free, static-shape round (default: on CUDA)."""

    def __init__(self, op_set: str = "cifar", num_ops: int = 2, cutout: float = 0.5,
                 magnitude: Optional[float] = None, static: Optional[bool] = None):
        if op_set not in OP_SETS:
            raise ConfigError(f"unknown RandAugment op set {op_set!r}; choose one of {', '.join(OP_SETS)}")
        if num_ops < 0:
            raise ConfigError(f"RandAugment num_ops must be >= 0, got {num_ops}")
        if not 0.0 <= cutout < 1.0:
            raise ConfigError(f"cutout must be a fraction of the image side in [0, 1), got {cutout}")
        if magnitude is not None and not 0.0 <= magnitude <= 1.0:
            raise ConfigError(f"RandAugment magnitude must be a fraction of the maximum in [0, 1], got {magnitude}")
        self.op_set, self.ops, self.num_ops, self.cutout = op_set, OP_SETS[op_set], num_ops, cutout
        self.magnitude, self.static = magnitude, static  # static: None = on CUDA only (see apply_round)
        self._geometric: Optional[torch.Tensor] = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for _ in range(self.num_ops):
            x = self.apply_round(x, generator)
        if self.cutout > 0:
            x = cutout(x, generator, self.cutout)
        return x

    def _magnitudes(self, b: int, generator: torch.Generator, device):
        """(m, strength) per image. m parametrises the ops that are the identity at m = 0.5 and go
        both ways (enhance factors, geometric ops); strength, the ops that grow from nothing at 0
        (posterize, solarize, SamplePairing). Random mode (FixMatch): one uniform draw serves
        both. Fixed magnitude s: strength = s, and m = 0.5 +- s/2 with a random direction."""
        if self.magnitude is None:
            m = _uniform(b, generator, device)
            return m, m
        strength = torch.full((b,), float(self.magnitude), device=device)
        direction = torch.where(_uniform(b, generator, device) < 0.5, -1.0, 1.0)
        return 0.5 + 0.5 * strength * direction, strength

    def apply_round(self, x: torch.Tensor, generator: torch.Generator,
                    ops: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One op per image. ``ops`` (indices into self.ops) may be given, for tests.

        Two implementations of the same round, equal image for image (tests check it): on CUDA
        (or with ``static=True``) every op of the set is computed on the whole batch and each
        image keeps its own op's result by a mask, so the round has static shapes and never
        waits on the device (no unique / nonzero: a CUDA graph can hold it); elsewhere each op
        runs on its own images only, which costs ~1/len(ops) of the work where a host sync is free."""
        b, device = len(x), x.device
        if ops is None:
            ops = torch.randint(len(self.ops), (b,), generator=generator, device=device)
        m, strength = self._magnitudes(b, generator, device)
        partner = torch.randint(b, (b,), generator=generator, device=device)
        static = self.static if self.static is not None else x.is_cuda
        round_fn = self._round_static if static else self._round_by_op
        return round_fn(x, ops, m, strength, partner)

    def _colour(self, name: str, x: torch.Tensor, m: torch.Tensor, strength: torch.Tensor,
                partner_x: torch.Tensor) -> torch.Tensor:
        if name == "sample_pairing":
            w = (MAX_SAMPLE_PAIRING * strength).view(-1, 1, 1, 1)
            return (1 - w) * x + w * partner_x
        return COLOUR_OPS[name](x, strength if name in UNSIGNED else m)

    def _warp(self, x: torch.Tensor, ops: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        matrices = _affine_matrices(ops, m, self.ops, x.shape[2], x.shape[3])
        # Gray outside the image: bilinear sampling of x - FILL with zeros outside, plus FILL, is
        # kornia's padding_mode="fill" exactly (sum of the inside weights times x, FILL times the
        # rest) with one sampling pass; "fill" makes two (the image and a mask of ones).
        return warp_affine(x - FILL, matrices, (x.shape[2], x.shape[3]), padding_mode="zeros",
                           align_corners=True) + FILL

    def _round_static(self, x, ops, m, strength, partner):
        out = x
        partner_x = x[partner]
        for k, name in enumerate(self.ops):
            if name not in GEOMETRIC:
                chosen = (ops == k).view(-1, 1, 1, 1)
                out = torch.where(chosen, self._colour(name, x, m, strength, partner_x), out)
        if any(name in GEOMETRIC for name in self.ops):  # one warp of the whole batch for all geometric ops
            geometric = self._geometric_mask(x.device)[ops]
            out = torch.where(geometric.view(-1, 1, 1, 1), self._warp(x, ops, m), out)
        return out

    def _geometric_mask(self, device) -> torch.Tensor:
        """Which ops of the set are geometric, on ``device``; built once (a host-to-device copy
        inside a captured step would be a sync)."""
        if self._geometric is None or self._geometric.device != device:
            self._geometric = torch.tensor([n in GEOMETRIC for n in self.ops], device=device)
        return self._geometric

    def _round_by_op(self, x, ops, m, strength, partner):
        out = x.clone()
        present = set(torch.unique(ops).tolist())  # one host sync per round: free on the CPU
        for k in present:
            name = self.ops[k]
            if name in GEOMETRIC:
                continue
            idx = (ops == k).nonzero().squeeze(1)
            out[idx] = self._colour(name, x[idx], m[idx], strength[idx], x[partner[idx]])
        if any(self.ops[k] in GEOMETRIC for k in present):
            idx = self._geometric_mask(x.device)[ops].nonzero().squeeze(1)
            out[idx] = self._warp(x[idx], ops[idx], m[idx])
        return out

    def __repr__(self) -> str:
        return (f"RandAugment(op_set={self.op_set!r}, num_ops={self.num_ops}, cutout={self.cutout}, "
                f"magnitude={self.magnitude})")


def cutout(x: torch.Tensor, generator: torch.Generator, fraction: float = 0.5) -> torch.Tensor:
    """A gray square of side fraction x H at a uniformly random centre per image (it may hang
    over the border, as in the Cutout paper and FixMatch)."""
    b, _, h, w = x.shape
    size_h, size_w = max(1, int(round(fraction * h))), max(1, int(round(fraction * w)))
    cy = torch.randint(h, (b, 1, 1), generator=generator, device=x.device)
    cx = torch.randint(w, (b, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - size_h // 2, cx - size_w // 2
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return torch.where(inside[:, None], torch.full_like(x, FILL), x)


def flip_and_translate(x: torch.Tensor, generator: torch.Generator, hflip: bool = True,
                       translate: float = 0.125) -> torch.Tensor:
    """The weak augmentation: mirror half the images left-right (if hflip), then shift each by up
    to translate x side in both directions, with reflect padding (4 px on 32 px)."""
    b, c, h, w = x.shape
    if hflip:
        flip = torch.rand(b, generator=generator, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = int(round(translate * h))
    if pad == 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    oy = torch.randint(2 * pad + 1, (b, 1), generator=generator, device=x.device)
    ox = torch.randint(2 * pad + 1, (b, 1), generator=generator, device=x.device)
    # Each image's h x w window at (oy, ox), as one gather over the flattened padded image.
    rows = (oy + torch.arange(h, device=x.device)).view(b, h, 1)
    cols = (ox + torch.arange(w, device=x.device)).view(b, 1, w)
    window = (rows * (w + 2 * pad) + cols).view(b, 1, h * w).expand(b, c, h * w)
    return padded.flatten(2).gather(2, window).view(b, c, h, w)


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator,
          per_example: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al.; used by ICT, MixMatch and Pseudo-Label with mixup): each example is
    blended with a random partner of the batch, lam ~ Beta(alpha, alpha). Targets are (B, C)
    distributions. per_example draws one lam per example and keeps lam >= 0.5 (MixMatch), so
    the mixed example stays closer to its own. Returns (x_mixed, targets_mixed, lam)."""
    if alpha <= 0:
        raise ConfigError(f"mixup alpha must be positive, got {alpha}")
    b = len(x)
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    # torch's Beta sampler takes no generator: seed the global CPU RNG from ours inside a
    # fork, so the draw is reproducible and the global RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
        lam = beta.sample((b,) if per_example else (1,)).to(x.device)
    if per_example:
        lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(b, generator=generator, device=generator.device).to(x.device)
    lam_x = lam.view(-1, *([1] * (x.dim() - 1)))
    lam_t = lam.view(-1, 1)
    return lam_x * x + (1 - lam_x) * x[perm], lam_t * targets + (1 - lam_t) * targets[perm], lam
