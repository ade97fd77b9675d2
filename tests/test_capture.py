"""--capture and the sync-free step: the compiled, static-graph step gives the numbers of the eager
step (the reference); the EMA update reads nothing on the host."""
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from conftest import HostReads
from mentor.errors import ConfigError
from mentor.train import TrainConfig, Trainer
from mentor.train.ema import SyncFreeEMA


def config(**overrides):
    settings = dict(method="fixmatch", dataset="digits", num_labeled=50, steps=5, seed=3, strong_noise=0.15,
                    method_options={"threshold": 0.5}, eval_every=0, device="cpu", progress=False, lr=0.1,
                    schedule="cosine", ema_decay=0.9)
    return TrainConfig(**{**settings, **overrides})


def trained(capture: bool):
    trainer = Trainer(config(capture=capture))
    summary = trainer.fit()
    weights = [p.detach().clone() for p in trainer.method.models["model"].parameters()]
    ema = [p.detach().clone() for p in trainer.ema.module.parameters()]
    return trainer, summary, weights, ema


def test_captured_step_equals_eager_step():
    torch._dynamo.reset()
    eager, eager_summary, eager_w, eager_ema = trained(False)
    captured, captured_summary, captured_w, captured_ema = trained(True)
    assert not captured.method.__class__.loss is captured.method.loss  # the loss really is the compiled one
    for a, b in zip(eager_w + eager_ema, captured_w + captured_ema):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert eager_summary["final_test_accuracy"] == captured_summary["final_test_accuracy"]
    # the schedule moved the rates (tensors filled in place under capture) exactly as in eager
    assert float(captured.schedulers["model"].get_last_lr()[0]) == pytest.approx(eager.schedulers["model"].get_last_lr()[0])
    assert float(eager.schedulers["model"].get_last_lr()[0]) < 0.1
    for key, value in eager.history[-1]["train"].items():
        assert captured.history[-1]["train"][key] == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_captured_mpl_step_equals_eager_step():
    """MPL's two models and two optimizers, the feedback's JVP with the step's dropout masks
    replayed, the UDA ramp as device data, the waiting and finetuning phases as host branches."""
    from test_image_training import image_config, tiny_images

    options = dict(uda_threshold=0.0, uda_ramp_steps=4, student_wait_steps=1, finetune_steps=1,
                   student_dropout=0.3, teacher_dropout=0.2)

    def run(capture):
        trainer = Trainer(image_config("meta_pseudo_labels", method_options=options, steps=7, ema_decay=0.9,
                                       eval_every=0, schedule="cosine", capture=capture), dataset=tiny_images())
        trainer.fit()
        return trainer

    torch._dynamo.reset()
    eager, captured = run(False), run(True)
    assert hasattr(captured.method._labeled_gradient_jvp, "_torchdynamo_orig_callable")  # really compiled
    assert captured.method._ramp is not None and float(captured.method._ramp) == 1.0  # filled in place
    captured_models = captured.method.models.state_dict()
    for key, want in eager.method.models.state_dict().items():
        torch.testing.assert_close(captured_models[key], want, rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip(eager.ema.module.parameters(), captured.ema.module.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    logs = [entry["train"] for entry in eager.history]
    assert any("teacher_mpl" in entry for entry in logs)
    for want, got in zip(logs, [entry["train"] for entry in captured.history]):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_capture_refuses_methods_with_host_logic():
    with pytest.raises(ConfigError, match="--capture: method 'mixmatch'.*capturable methods: fixmatch, "
                                          "meta_pseudo_labels, supervised"):
        Trainer(config(method="mixmatch", method_options={}, input_noise=0.15, capture=True))
    with pytest.raises(ConfigError, match="samples its hard labels on the host"):
        Trainer(config(method="meta_pseudo_labels", method_options={"labels": "sample"}, capture=True))
    with pytest.raises(ConfigError, match="reduced_mpl' switches from its large teacher"):
        Trainer(config(method="reduced_mpl", method_options={}, capture=True))


def test_sync_free_ema_equals_averaged_model_and_reads_nothing_after_the_first_update():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    ema = SyncFreeEMA(model, 0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(5):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        reference.update_parameters(model)
        with HostReads() as reads:
            ema.update_parameters(model)
        assert reads.seen == (["_local_scalar_dense"] if step in (0, 3) else [])  # the count, read once
        if step == 2:  # a checkpoint round trip: the count comes back from the state
            state = ema.state_dict()
            ema = SyncFreeEMA(model, 0.9)
            ema.load_state_dict(state)
    for (key, want), (_, got) in zip(reference.state_dict().items(), ema.state_dict().items()):
        assert torch.equal(got, want), key
    with HostReads() as reads:  # the guard can fail: the parent reads the count on every update
        reference.update_parameters(model)
    assert reads.seen


@pytest.mark.parametrize("method", ["fixmatch", "meta_pseudo_labels"])
def test_a_training_step_on_images_reads_nothing_on_the_host(method):
    """Views (with the static RandAugment round a GPU uses), forward, losses, backward, optimizer,
    schedule and EMA (MPL: both models, both optimizers, the exact feedback through the JVP):
    after the EMA's one read of its count, no step waits on the device."""
    from test_image_training import image_config, tiny_images

    trainer = Trainer(image_config(method, ema_decay=0.9, eval_every=0, steps=20), dataset=tiny_images())
    trainer.views.randaugment.static = True
    trainer.ema.update_parameters(trainer.method.eval_model())
    for _ in range(3):
        with HostReads() as reads:
            trainer.method.step(trainer.stream.next())
            for scheduler in trainer.schedulers.values():
                scheduler.step()
            trainer.ema.update_parameters(trainer.method.eval_model())
        assert reads.seen == []
