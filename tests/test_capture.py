"""--capture: the compiled, static-graph step gives the numbers of the eager step (the reference)."""
import pytest
import torch

from mentor.errors import ConfigError
from mentor.train import TrainConfig, Trainer


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


def test_capture_refuses_methods_with_host_logic():
    with pytest.raises(ConfigError, match="--capture: method 'mixmatch'.*capturable methods: fixmatch, supervised"):
        Trainer(config(method="mixmatch", method_options={}, input_noise=0.15, capture=True))
