"""Shrinks every training run to a few steps (tests/test_docs_examples.py): TrainConfig's
constructor caps ``steps`` (at LIMIT["steps"], which a block may raise) and the schedule lengths
tied to it, so an example runs in seconds whatever budget it writes."""

LIMIT = {"steps": 20}


def cap_steps(config_class, steps: int, setattr_=setattr) -> None:
    LIMIT["steps"] = steps
    original = getattr(config_class.__init__, "__wrapped__", config_class.__init__)

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.steps = min(self.steps, LIMIT["steps"])
        self.warmup_steps = min(self.warmup_steps, self.steps)
        if self.eval_every:
            self.eval_every = min(self.eval_every, self.steps)

    init.__wrapped__ = original
    setattr_(config_class, "__init__", init)
