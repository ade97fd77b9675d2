"""Model zoo: parameter counts of the papers' networks, forward shapes, noise options."""
import copy

import pytest
import torch
from torch import nn

from mentor.errors import ConfigError
from mentor.models import create_model
from mentor.models.layers import DropPath


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_wrn28_2_has_the_papers_parameter_count():
    # FixMatch / MPL: WRN-28-2 has 1.47M parameters (1,467,610 with a 10-way head).
    assert count(create_model("wrn28_2", (3, 32, 32), 10)) == 1_467_610
    assert 23.3e6 < count(create_model("wrn28_8", (3, 32, 32), 10)) < 23.4e6  # FixMatch: 23.4M


def test_wrn_is_the_fixmatch_variant():
    model = create_model("wrn28_2", (3, 32, 32), 10)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert bns and all(m.momentum == 0.001 for m in bns)
    assert acts and all(m.negative_slope == 0.1 for m in acts)
    assert len([m for m in model.modules() if m.__class__.__name__ == "BasicBlock"]) == 12


@pytest.mark.parametrize("name,shape", [("wrn28_2", (3, 32, 32)), ("cnn13", (3, 32, 32)),
                                        ("small_cnn", (1, 28, 28)), ("small_cnn", (3, 32, 32)),
                                        ("wrn", (1, 28, 28)), ("mlp", (3, 8, 8)),
                                        ("residual_mlp", (1, 28, 28)), ("residual_mlp", (13,))])
def test_forward_shapes(name, shape):
    options = {"depth": 10, "width": 1} if name == "wrn" else {}
    model = create_model(name, shape, 7, **options)
    assert model(torch.randn(5, *shape)).shape == (5, 7)


def test_cnn13_is_the_mean_teacher_convnet():
    assert 3.0e6 < count(create_model("cnn13", (3, 32, 32), 10)) < 3.2e6
    convs = [m for m in create_model("cnn13", (3, 32, 32), 10).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 9  # 3 + 3 + 3 convolutions, then the classifier: 13 layers with pools/drops


def test_dropout_and_stochastic_depth_are_noise_in_training_only():
    model = create_model("wrn", (3, 16, 16), 4, depth=10, width=1, dropout=0.3, stochastic_depth=0.5)
    x = torch.randn(6, 3, 16, 16)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    b = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(x), model(x))
    rates = [m.p for m in model.modules() if isinstance(m, DropPath)]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.5)  # linear decay of survival


def test_residual_mlp_blocks_are_residual_and_droppable():
    model = create_model("residual_mlp", (6,), 3, width=8, blocks=3, stochastic_depth=0.3)
    rates = [m.p for m in model.modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx([0.1, 0.2, 0.3])
    block, h = model.blocks[0], torch.randn(400, 8)
    with torch.no_grad():
        branch = block.branch(h)
        block.drop_path.p = 0.5
        torch.manual_seed(0)
        out = block.train()(h)
    dropped = torch.isclose(out, h).all(1)  # each example: the identity path alone ...
    kept = torch.isclose(out, h + 2 * branch).all(1)  # ... or the branch scaled by 1 / (1 - p)
    assert bool((dropped ^ kept).all()) and 150 < int(dropped.sum()) < 250
    assert torch.allclose(block.eval()(h), h + branch)
    with pytest.raises(ConfigError, match="blocks >= 1"):
        create_model("residual_mlp", (6,), 3, blocks=0)


def test_drop_path_keeps_the_expectation():
    layer = DropPath(0.25).train()
    torch.manual_seed(0)
    out = layer(torch.ones(20000, 1))
    assert torch.allclose(out.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs(float(out.mean()) - 1.0) < 0.03


def test_bad_model_options():
    with pytest.raises(ConfigError, match="depth must be 6n \\+ 4"):
        create_model("wrn", (3, 32, 32), 10, depth=27)
    with pytest.raises(ConfigError, match="takes images"):
        create_model("wrn28_2", (64,), 10)
    with pytest.raises(ConfigError, match="dropout must be in"):
        create_model("small_cnn", (1, 28, 28), 10, dropout=1.0)


def test_replayable_noise_draws_as_plain_layers_and_replays_its_draw():
    from mentor.models.layers import ReplayableDropout, make_noise_replayable, noise_mode

    model = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.4), nn.Linear(16, 16), DropPath(0.5), nn.Linear(16, 3))
    reference = copy.deepcopy(model)
    layers = make_noise_replayable(model)
    assert [type(layer) for layer in layers] == [ReplayableDropout, DropPath]
    x = torch.randn(32, 5)
    torch.manual_seed(0)
    want = reference(x)
    torch.manual_seed(0)
    with noise_mode(layers, "record"):
        recorded = model(x)
    assert torch.equal(recorded, want)  # the draws of nn.Dropout and of DropPath as it was
    with noise_mode(layers, "replay"):
        replayed = [model(x) for _ in range(2)]
    assert all(torch.equal(r, recorded) for r in replayed)
    fresh = model(x)  # outside: fresh noise again
    assert not torch.equal(fresh, recorded)
    assert layers[0].noise_mode is None
    with pytest.raises(ConfigError, match="'1' \\(Dropout2d\\) draws noise that cannot be replayed"):
        make_noise_replayable(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout2d(0.2)))


@pytest.mark.parametrize("name,shape", [("wrn28_2", (3, 32, 32)), ("cnn13", (3, 32, 32)), ("small_cnn", (1, 28, 28)),
                                        ("mlp", (13,)), ("residual_mlp", (13,)), ("efficientnet_lite0", (3, 32, 32))])
def test_every_model_exposes_its_features_for_heads(name, shape):
    """SimMatch's, CoMatch's and CRMatch's heads read any model's features the same way: the input
    of its classifier, sized by feature_dim (no special case per model or per method)."""
    from mentor.models.layers import feature_dim, features_and_logits, projection_head

    model = create_model(name, shape, 7)
    features, logits = features_and_logits(model, torch.randn(2, *shape))
    assert logits.shape == (2, 7) and features.shape == (2, feature_dim(model))
    assert projection_head(model, 5)(features).shape == (2, 5)
