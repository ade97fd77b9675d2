"""`mentor demo` (and `make demo`): the question a user brings, answered on built-in data.

Does unlabeled data help on scikit-learn's 8x8 digits with 50 labels, and which method? The
problem and budget were chosen on validation figures only (BENCHMARKS.md, "mentor compare"):
- 50 labels (5 per class), because that is where the unlabeled data matters on digits: at 100
  labels the best gain on validation was +5 points inside a ±6 interval, at 200 labels every
  method was within ±1.5 of supervised training;
- two draws of the 50 labels (seeds 0 and 1), each split into 5 folds, because 50 held-out
  labels give a resolution of about ±8 points, too coarse for the gains here; 100 give about
  ±6, and a third draw (±4.7) would not fit 2 minutes on 2 cores;
- 600 steps per cell, every default method and baseline, 2 worker processes: 70 s on 2 cores.
  At 1,000 steps MPL and UDA also helped on validation (+6 and +5), but the demo took 98-122 s
  as the machine's speed drifted, too close to its 2-minute budget; at 600 MixMatch (+12
  [+6, +19]) and LabelSpreading (+15 [+8, +22]) still help with intervals that exclude zero.
"""
from __future__ import annotations

from typing import Callable, Optional

DEMO = dict(dataset="digits", num_labeled=50, steps=600, eval_every=100)
DEMO_SEEDS = (0, 1)


def run_compare_demo(out: str = "demo_out", jobs: int = 2, progress: bool = True, steps: Optional[int] = None,
                     resume="auto", log: Optional[Callable[[str], None]] = None) -> dict:
    """The demo's comparison into ``out`` (a finished demo is reused; ``steps`` shortens it for tests)."""
    from ..compare import compare
    from ..train import TrainConfig

    settings = {**DEMO, **({"steps": steps, "eval_every": 0} if steps else {})}
    return compare(TrainConfig(device="cpu", **settings), seeds=DEMO_SEEDS, folds=5, out=out, jobs=jobs,
                   resume=resume, progress=progress, log=log)
