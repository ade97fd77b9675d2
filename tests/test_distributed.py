"""torchrun: 2 processes on CPU with gloo equal 1 process at the same global batch, every rank
writes nothing but rank 0, and a killed 2-process run resumes on the same trajectory."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from mentor.errors import CheckpointError
from mentor.train import TrainConfig, Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEARDOWN_ABORT = "terminate called without an active exception"


def torchrun(*args, nproc=2, killed=False):
    """``killed``: the run dies on purpose; its exit status is not asserted (a rank whose peer has
    gone may be aborted by gloo first, as when a machine goes down), only what it left on disk."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    done = _run_group(command, env)
    if done is None:
        # Timed out: seen once in a few hundred runs, a resumed 2-rank run from shards idle at 2% CPU
        # while the 2 cores ran 6 other processes. Every process of the group is killed (none is left
        # behind) and the run tried once more; twice is a failure.
        if "--resume" not in args and "--out" in args:
            shutil.rmtree(args[args.index("--out") + 1], ignore_errors=True)
        done = _run_group(command, env)
        assert done is not None, f"torchrun {' '.join(args)} timed out twice"
    if not killed and done.returncode != 0 and TEARDOWN_ABORT in done.stderr:
        # A rank aborted by the C++ runtime while the process exits (gloo's threads at teardown, after
        # the barrier and destroy_process_group; seen in about 1 of 50 runs on 2 cores): run it once
        # more, from a clean --out unless it resumes. Any other failure, or this one twice, fails the test.
        if "--resume" not in args and "--out" in args:
            shutil.rmtree(args[args.index("--out") + 1], ignore_errors=True)
        done = _run_group(command, env)
        assert done is not None, f"torchrun {' '.join(args)} timed out"
    if not killed:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def _run_group(command, env, timeout=300):
    """subprocess.run in a session of its own; on a timeout the whole group (torchrun, its ranks
    and their data-loading workers) is killed and None returned."""
    import signal

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def weights(out):
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)
    return state["method"]["models"]


def test_two_processes_equal_one_at_the_same_global_batch(tmp_path):
    two = str(tmp_path / "two")
    common = ["--method", "supervised", "--dataset", "two_moons", "--num-labeled", "20", "--steps", "40",
              "--eval-every", "20", "--no-progress"]
    done = torchrun("-m", "mentor.cli", "train", *common, "--batch-size", "5", "--unlabeled-batch-size", "64",
                    "--out", two)
    assert done.stdout.count('"final_test_accuracy"') == 1  # rank 0 alone prints the summary
    one = Trainer(TrainConfig(method="supervised", dataset="two_moons", num_labeled=20, steps=40, eval_every=20,
                              batch_size=10, unlabeled_batch_size=128, out=str(tmp_path / "one"), progress=False,
                              device="cpu"))
    one.fit()
    for key, value in weights(str(tmp_path / "one")).items():
        torch.testing.assert_close(weights(two)[key], value, rtol=1e-5, atol=1e-6)
    with open(os.path.join(two, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [20, 40]  # written once, by rank 0
    summary = json.load(open(os.path.join(two, "summary.json")))
    assert summary["processes"] == 2 and summary["final_test_accuracy"] == pytest.approx(
        one.history[-1]["test_accuracy"], abs=1e-3)


STATISTICS = {"freematch": ["time_p", "p_model", "label_hist"], "simmatch": ["bank", "bank_labels"],
              "flexmatch": ["selected", "beta"], "softmatch": ["mu", "variance"]}


@pytest.mark.parametrize("method", sorted(STATISTICS))
def test_a_methods_statistics_are_global_two_processes_equal_one(method, tmp_path):
    """FreeMatch's thresholds and SimMatch's labeled memory bank are computed over the global batch:
    two processes at batch b give the weights and the statistics of one process at batch 2b. (The
    strong view is made without a random draw, which is per rank and would differ.)"""
    two = str(tmp_path / "two")
    torchrun(os.path.join(ROOT, "tests", "dist_worker.py"), "--out", two, "--method", method, "--fixed-strong-view")
    config = TrainConfig(method=method, dataset="two_moons", num_labeled=20, batch_size=10, unlabeled_batch_size=64,
                         steps=12, eval_every=4, strong_noise=0.2, model_options={"hidden": [16]}, device="cpu",
                         out=str(tmp_path / "one"), progress=False, seed=3)
    one = Trainer(config)
    one.views.strong_view = lambda x, generator: 1.5 * x
    one.fit()
    for key, value in weights(str(tmp_path / "one")).items():
        torch.testing.assert_close(weights(two)[key], value, rtol=1e-5, atol=1e-6)
    extra_one = torch.load(os.path.join(tmp_path, "one", "checkpoint.pt"), weights_only=False)["method"]["extra"]
    extra_two = torch.load(os.path.join(two, "checkpoint.pt"), weights_only=False)["method"]["extra"]
    for key in STATISTICS[method]:
        torch.testing.assert_close(extra_two[key], extra_one[key], rtol=1e-5, atol=1e-6)
    if method == "freematch":
        assert float(extra_one["time_p"]) != pytest.approx(0.5)  # the EMA moved from 1/C


def test_the_rest_of_the_family_runs_under_torchrun(tmp_path):
    """The methods whose statistics are not compared above train in two processes to the end."""
    family = ["adamatch", "comatch", "crmatch", "dash", "defixmatch", "refixmatch", "sequencematch"]
    torchrun(os.path.join(ROOT, "tests", "dist_worker.py"), "--out", str(tmp_path), "--each", ",".join(family))
    for method in family:
        summary = json.load(open(tmp_path / method / "summary.json"))
        assert summary["processes"] == 2 and math.isfinite(summary["final_test_loss"]), method


@pytest.mark.parametrize("method", ["fixmatch", "meta_pseudo_labels"])
def test_killed_two_process_run_resumes_the_same_trajectory(method, tmp_path):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    worker = os.path.join(ROOT, "tests", "dist_worker.py")
    torchrun(worker, "--out", straight, "--method", method)
    torchrun(worker, "--out", killed, "--method", method, "--die-after", "7", killed=True)  # after step 4's checkpoint
    assert json.load(open(os.path.join(killed, "metrics.jsonl")))["step"] == 4
    torchrun(worker, "--out", killed, "--method", method, "--resume")
    for key, value in weights(straight).items():
        assert torch.equal(weights(killed)[key], value), key
    with open(os.path.join(killed, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [4, 8, 12]
    state = torch.load(os.path.join(killed, "checkpoint.pt"), weights_only=False)
    assert state["world_size"] == 2 and len(state["per_rank"]) == 2
    assert not torch.equal(state["per_rank"][0]["view_generator"], state["per_rank"][1]["view_generator"])
    # the same run in one process is refused: its batches and random draws would differ
    config = TrainConfig(method=method, dataset="two_moons", num_labeled=20, batch_size=5, unlabeled_batch_size=32,
                         steps=12, eval_every=4, strong_noise=0.2, model_options={"hidden": [16]}, device="cpu",
                         out=killed, progress=False, seed=3,
                         method_options={"threshold": 0.5} if method == "fixmatch" else {})
    with pytest.raises(CheckpointError, match="2 process"):
        Trainer(config).fit(resume=True)


def test_pseudo_label_shards_the_pool_across_processes(tmp_path):
    from mentor.cli import main

    run = str(tmp_path / "teacher")
    Trainer(TrainConfig(method="supervised", dataset="two_moons", num_labeled=20, steps=30, eval_every=0, out=run,
                        progress=False, device="cpu")).fit()
    assert main(["pseudo-label", run, "--out", str(tmp_path / "one"), "--shard-size", "300", "--no-progress",
                 "--device", "cpu"]) == 0
    done = torchrun("-m", "mentor.cli", "pseudo-label", run, "--out", str(tmp_path / "two"), "--shard-size", "300",
                    "--no-progress", "--device", "cpu")
    assert done.stdout.count('"complete": true') == 1
    shards = sorted(os.listdir(tmp_path / "one"))
    assert len([s for s in shards if s.startswith("shard-")]) == 7 and shards == sorted(os.listdir(tmp_path / "two"))
    from mentor.pseudo_labels import read_labels

    one, two = read_labels(str(tmp_path / "one")), read_labels(str(tmp_path / "two"))
    assert two.manifest["complete"] and (one.probs == two.probs).all() and (one.argmax == two.argmax).all()
