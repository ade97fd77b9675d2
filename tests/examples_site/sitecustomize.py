"""Loaded by Python at start-up in the examples' subprocesses (PYTHONPATH): the same step cap as
the examples run in the test process."""
import os

if os.environ.get("MENTOR_EXAMPLE_STEPS"):
    from mentor.train.config import TrainConfig
    from sitecustomize_cap import cap_steps

    cap_steps(TrainConfig, int(os.environ["MENTOR_EXAMPLE_STEPS"]))
