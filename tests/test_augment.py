"""Batched augmentation: per-image ops, exact op sets, each op's effect, determinism."""
import numpy as np
import pytest
import torch

from mentor.augment import OP_SETS, ImageViews, RandAugment, cutout, flip_and_translate, mixup
from mentor.augment.images import COLOUR_OPS, GEOMETRIC, FILL
from mentor.errors import ConfigError
from conftest import HostReads


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=16, c=3, size=16, seed=0):
    return torch.rand(n, c, size, size, generator=gen(seed))


def test_op_sets_are_mpl_table_5():
    assert set(OP_SETS["cifar"]) == {"auto_contrast", "brightness", "color", "contrast", "equalize", "invert",
                                     "sharpness", "posterize", "sample_pairing", "solarize", "rotate", "shear_x",
                                     "shear_y", "translate_x", "translate_y"}
    # SVHN: no rotation, no horizontal translation (wrong invariances for digits), no SamplePairing.
    assert set(OP_SETS["svhn"]) == set(OP_SETS["cifar"]) - {"rotate", "translate_x", "sample_pairing"}
    assert set(COLOUR_OPS) | set(GEOMETRIC) | {"sample_pairing"} == set(OP_SETS["cifar"])


def test_ops_are_drawn_per_image():
    """32 copies of one image: per-image op sampling gives many different outputs; a batch-level
    library would give one."""
    x = images(1).expand(32, -1, -1, -1).clone()
    out = RandAugment("cifar", num_ops=1, cutout=0.0)(x, gen())
    distinct = {tuple(img.flatten()[:64].round(decimals=4).tolist()) for img in out}
    assert len(distinct) > 8


@pytest.mark.parametrize("op", OP_SETS["cifar"])
def test_every_op_changes_images_and_stays_in_range(op):
    ra = RandAugment("cifar", num_ops=1, cutout=0.0)
    x = images(8)
    k = ra.ops.index(op)
    out = ra.apply_round(x, gen(), ops=torch.full((8,), k))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out - x).abs().mean() > 1e-3


def test_op_semantics():
    ra = RandAugment("cifar", num_ops=1, cutout=0.0)
    x = images(4)
    invert = ra.apply_round(x, gen(), ops=torch.full((4,), ra.ops.index("invert")))
    assert torch.allclose(invert, 1 - x)
    gray = images(4, c=1)
    assert torch.equal(ra.apply_round(gray, gen(), ops=torch.full((4,), ra.ops.index("color"))), gray)
    auto = ra.apply_round(x * 0.5 + 0.2, gen(), ops=torch.full((4,), ra.ops.index("auto_contrast")))
    assert torch.allclose(auto.amin(dim=(2, 3)), torch.zeros(4, 3), atol=1e-5)
    assert torch.allclose(auto.amax(dim=(2, 3)), torch.ones(4, 3), atol=1e-5)
    # Translation moves content by whole rows for a vertical shift.
    bars = torch.zeros(1, 1, 16, 16)
    bars[:, :, 8] = 1.0
    moved = ra.apply_round(bars.expand(6, 3, 16, 16).clone(), gen(), ops=torch.full((6,), ra.ops.index("translate_y")))
    rows = moved[:, 0].mean(dim=2).argmax(dim=1)
    assert (rows != 8).any()


def test_cutout_square_of_half_side():
    x = torch.zeros(64, 3, 32, 32)
    out = cutout(x, gen(), 0.5)
    area = (out[:, 0] == FILL).sum(dim=(1, 2))
    assert area.max() == 16 * 16 and area.min() > 0  # a square of 16 px, clipped at the border


def test_weak_flip_and_translate():
    x = images(8)
    assert torch.equal(flip_and_translate(x, gen(), hflip=False, translate=0.0), x)
    flipped = flip_and_translate(x, gen(), hflip=True, translate=0.0)
    for a, b in zip(flipped, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))
    assert any(not torch.equal(a, b) for a, b in zip(flipped, x))
    shifted = flip_and_translate(x, gen(1), hflip=False, translate=0.125)  # 2 px on 16
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(8):  # each output is a 16x16 window of the reflect-padded image
        windows = [padded[i, :, dy:dy + 16, dx:dx + 16] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(shifted[i], w) for w in windows)


def test_augmentation_is_reproducible_by_generator():
    ra = RandAugment("svhn")
    x = images(8)
    assert torch.equal(ra(x, gen(3)), ra(x, gen(3)))
    assert not torch.equal(ra(x, gen(3)), ra(x, gen(4)))


def test_image_views_standardise_and_need_no_float_input():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    views = ImageViews(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), randaugment=RandAugment())
    assert torch.allclose(views.eval(x), (x.float() / 255 - 0.5) / 0.25)
    assert views.strong(x, gen()).shape == (4, 3, 8, 8) and views.has_strong


def test_mixup():
    x, t = images(6), torch.eye(6)
    xm, tm, lam = mixup(x, t, 0.75, gen())
    assert torch.allclose(tm.sum(1), torch.ones(6)) and 0 <= float(lam) <= 1
    xm2, _, lam2 = mixup(x, t, 0.75, gen())
    assert torch.equal(xm, xm2) and torch.equal(lam, lam2)
    _, _, lams = mixup(x, t, 0.75, gen(), per_example=True)
    assert lams.shape == (6,) and (lams >= 0.5).all()
    with pytest.raises(ConfigError):
        mixup(x, t, 0.0, gen())


def test_bad_augment_options():
    with pytest.raises(ConfigError, match="unknown RandAugment op set 'imagenet'"):
        RandAugment("imagenet")
    with pytest.raises(ConfigError, match="cutout"):
        RandAugment(cutout=1.5)


def test_mpl_op_set_numbers_are_documented():
    # guard against drifting from Table 5: 15 ops for CIFAR, 12 for SVHN
    assert (len(OP_SETS["cifar"]), len(OP_SETS["svhn"])) == (15, 12)
    assert np.isclose(FILL, 0.5)


# --- the static, sync-free round (the CUDA path) ------------------------------------------
@pytest.mark.parametrize("op_set", sorted(OP_SETS))
@pytest.mark.parametrize("magnitude", [None, 0.6])
def test_static_round_equals_the_per_op_round(op_set, magnitude):
    """The CUDA path (every op on the whole batch, kept by mask) gives each image exactly what
    the per-op path gives it, from the same generator state."""
    x = images(48, size=12, seed=3)
    by_op = RandAugment(op_set, num_ops=2, magnitude=magnitude, static=False)(x, gen(5))
    static = RandAugment(op_set, num_ops=2, magnitude=magnitude, static=True)(x, gen(5))
    torch.testing.assert_close(static, by_op, rtol=0, atol=1e-6)


def test_static_strong_view_reads_nothing_on_the_host():
    views = ImageViews([0.5] * 3, [0.25] * 3, randaugment=RandAugment("cifar", static=True))
    x = (images(32) * 255).to(torch.uint8)
    with HostReads() as reads:
        views.strong(x, gen())
        views.weak(x, gen())
    assert reads.seen == []
    with HostReads() as reads:  # the guard can fail: by default a CPU batch takes the per-op path
        RandAugment("cifar")(images(8), gen())
    assert "_unique2" in reads.seen and "nonzero" in reads.seen


def test_geometric_warp_is_kornias_gray_fill_in_one_pass():
    from kornia.geometry.transform import warp_affine

    from mentor.augment.images import _affine_matrices

    x = torch.rand(30, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    augment = RandAugment("cifar")
    ops = torch.tensor([augment.ops.index(GEOMETRIC[i % len(GEOMETRIC)]) for i in range(30)])
    m = torch.rand(30, generator=torch.Generator().manual_seed(1))
    want = warp_affine(x, _affine_matrices(ops, m, augment.ops, 16, 16), (16, 16), padding_mode="fill",
                       fill_value=torch.full((3,), FILL), align_corners=True)
    got = augment._warp(x, ops, m)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert (got == FILL).any() and (want - x).abs().max() > 0.1  # gray corners, moved pixels: not a no-op


def test_weak_shift_is_each_images_window_of_the_reflect_padded_batch():
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    out = flip_and_translate(x, g, hflip=False, translate=0.25)
    g = torch.Generator().manual_seed(2)
    oy, ox = (torch.randint(5, (6, 1), generator=g) for _ in range(2))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(6):
        y0, x0 = int(oy[i]), int(ox[i])
        assert torch.equal(out[i], padded[i, :, y0:y0 + 8, x0:x0 + 8])
