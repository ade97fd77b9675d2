"""Launched by tests/test_distributed.py under torchrun: one Trainer per process, optionally
killed (every rank at once, as a machine going down) after a number of steps."""
import argparse
import os
import sys

from mentor.train import TrainConfig, Trainer
from mentor.train.distributed import shutdown

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--method", default="fixmatch")
parser.add_argument("--die-after", type=int, default=0, help="raise KeyboardInterrupt at this stream draw")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--shards", help="a folder of train/test/pool shards (tests/test_shards.py): stream from them")
parser.add_argument("--fixed-strong-view", action="store_true",
                    help="a strong view with no random draw (1.5 x), so that a 1-process run can draw the same")
parser.add_argument("--each", help="comma-separated methods trained one after another into OUT/METHOD (one launch)")
args = parser.parse_args()

if args.each:
    for method in args.each.split(","):
        Trainer(TrainConfig(method=method, dataset="two_moons", num_labeled=20, batch_size=5, unlabeled_batch_size=32,
                            steps=6, eval_every=3, strong_noise=0.2, model_options={"hidden": [16]}, device="cpu",
                            out=os.path.join(args.out, method), progress=False, seed=3)).fit()
    shutdown()
    raise SystemExit(0)

config = TrainConfig(method=args.method, dataset="two_moons", num_labeled=20, batch_size=5, unlabeled_batch_size=32,
                     steps=12, eval_every=4, strong_noise=0.2, method_options={"threshold": 0.5}
                     if args.method == "fixmatch" else {}, model_options={"hidden": [16]}, device="cpu",
                     out=args.out, progress=False, seed=3)
if args.shards:
    config.dataset, config.strong_noise, config.num_labeled = "shards", None, 9
    config.data_path = os.path.join(args.shards, "train.json")
    config.dataset_options = {"test_path": os.path.join(args.shards, "test.json"), "workers": 1,
                              "unlabeled_path": os.path.join(args.shards, "pool.json")}
trainer = Trainer(config)
if args.fixed_strong_view:
    trainer.views.strong_view = lambda x, generator: 1.5 * x
if args.die_after:
    original, calls = trainer.stream.next, {"n": 0}

    def dying_next():
        calls["n"] += 1
        if calls["n"] == args.die_after:
            raise KeyboardInterrupt
        return original()

    trainer.stream.next = dying_next
try:
    trainer.fit(resume=args.resume)
except KeyboardInterrupt:
    os._exit(0)  # killed: no goodbye to the other ranks, as when a machine goes down
shutdown()
# Leave without the C++ runtime's exit-time destructors, as `python -m mentor.cli` does under torchrun
# (gloo's teardown aborts a rank now and then at that point, after all its work is on disk).
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
