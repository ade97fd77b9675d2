"""Data beyond memory: training from WebDataset shards, measured.

    python bench/shards.py data              # CIFAR-10 shards + a 1,000,000-image pool (seeded crops/flips)
    python bench/shards.py decode            # decoded images/s per worker: JPEG, PNG at 32 and 224 px
    python bench/shards.py rss               # FixMatch from shards: peak RSS with a 100k and a 1M pool
    python bench/shards.py step              # FixMatch step time: in memory vs from shards, 0/1/2 workers
    python bench/shards.py noisy-student     # one `mentor noisy-student` round on the 1M pool

Everything lives under --work (default /tmp/mentor_shards_bench); CIFAR-10 comes from
../shared/data/cifar10-jpeg.tar.gz (its JPEG files are stored in the shards as they are).
The pool: CIFAR-10's 50,000 training images, each drawn 20 times with a seeded random crop
(4-pixel reflect padding, as the weak view does) and flip, stored as JPEG (quality 95); its
first 10 shards are the 100k pool, all 100 the 1M pool. Results are printed as Markdown rows
for BENCHMARKS.md, with the command, the machine and the date.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CIFAR = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")
MENTOR = [sys.executable, "-m", "mentor.cli"]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"


def cifar_folder(work: str) -> str:
    from mentor.files import safe_extract

    dest = os.path.join(work, "cifar10")
    if not os.path.isdir(dest):
        safe_extract(CIFAR, dest)
    return os.path.join(dest, "cifar10-jpeg")


def mode_data(args) -> None:
    from mentor.data.shards.inputs import shard_source
    from mentor.data.shards import write_shards
    from mentor.data.sources import load_dataset

    shards = os.path.join(args.work, "shards")
    started = time.perf_counter()
    written = shard_source(shards, name="cifar10", source=cifar_folder(args.work), shard_size=5000, progress=True)
    print(f"cifar10 train/test shards: {time.perf_counter() - started:.1f} s "
          f"({sum(m['num_samples'] for m in written.values())} JPEG files stored as they are)")
    x = load_dataset("image_folder", cifar_folder(args.work)).x_train  # uint8 (50000, 3, 32, 32)

    def pool():
        for shard in range(args.pool // 10000):
            rng = np.random.default_rng([7, shard])
            source = rng.integers(0, len(x), 10000)
            dy, dx = rng.integers(0, 9, 10000), rng.integers(0, 9, 10000)
            flip = rng.random(10000) < 0.5
            padded = np.pad(x[source], ((0, 0), (0, 0), (4, 4), (4, 4)), mode="reflect")
            for i in range(10000):
                image = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
                yield (image[:, :, ::-1] if flip[i] else image), -1

    started = time.perf_counter()
    manifest = write_shards(pool(), shards, "pool", shard_size=10000, encoding="jpg", total=args.pool)
    seconds = time.perf_counter() - started
    size = sum(s["filesize"] for s in manifest["shardlist"])
    print(f"pool: {manifest['num_samples']} images in {len(manifest['shardlist'])} shards, {size / 1e9:.2f} GB, "
          f"written in {seconds:.0f} s ({manifest['num_samples'] / seconds:.0f} images/s, one process)")


def mode_decode(args) -> None:
    """Decoded images per second in one process (one DataLoader worker does the same work)."""
    from mentor.data.shards import ShardSet, write_shards
    from mentor.data.sources import load_dataset
    from PIL import Image

    x = load_dataset("image_folder", cifar_folder(args.work)).x_train[:2000]
    out = os.path.join(args.work, "decode")
    rows = []
    for side in (32, 224):
        images = x if side == 32 else np.stack([np.asarray(Image.fromarray(i.transpose(1, 2, 0)).resize(
            (side, side), Image.BICUBIC)).transpose(2, 0, 1) for i in x[:500]])
        for encoding in ("jpg", "png"):
            name = f"{encoding}{side}"
            manifest = write_shards(((i, 0) for i in images), out, name, shard_size=1000, encoding=encoding,
                                    progress=False)
            shards = ShardSet(os.path.join(out, f"{name}.json"))
            order = np.random.default_rng(0).permutation(len(shards))
            shards.images(order[:50])  # open the shards
            started = time.perf_counter()
            shards.images(order)
            rate = len(order) / (time.perf_counter() - started)
            kb = sum(s["filesize"] for s in manifest["shardlist"]) / len(order) / 1024
            rows.append(f"| {encoding.upper()} | {side}×{side} | {kb:.1f} KB | {rate:,.0f} |")
    print(f"\n`python bench/shards.py decode` ({machine()}): one process, shuffled reads within the set\n")
    print("| encoding | image | bytes per sample in the tar | decoded images/s per worker |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))


class PeakRSS:
    """Samples the resident memory (RSS) of a process, and the proportional set size (PSS) of it
    and its children (DataLoader workers), every 0.2 s. Forked workers share pages with the
    trainer; PSS counts a shared page once over the processes, RSS once in each of them."""

    def __init__(self, pid: int):
        self.pid, self.main, self.total, self._stop = pid, 0, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _bytes(path: str, field: str) -> int:
        """A "Field:  N kB" line of a /proc file, in bytes (0 once the process is gone)."""
        try:
            with open(path) as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
        except (OSError, StopIteration):
            return 0

    def _rss(self, pid: int) -> int:
        return self._bytes(f"/proc/{pid}/status", "VmRSS:")

    def _pss(self, pid: int) -> int:
        return self._bytes(f"/proc/{pid}/smaps_rollup", "Pss:")

    def _children(self, pid: int):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            return []
        return kids + [g for k in kids for g in self._children(k)]

    def _run(self):
        while not self._stop.is_set():
            main = self._rss(self.pid)
            total = self._pss(self.pid) + sum(self._pss(k) for k in self._children(self.pid))
            self.main, self.total = max(self.main, main), max(self.total, total)
            time.sleep(0.2)

    def stop(self):
        self._stop.set()
        self.thread.join()


def train_args(args, pool_shards: int, out: str, steps: int, workers: int, method: str = "fixmatch") -> list:
    shards = os.path.join(args.work, "shards")
    return [*MENTOR, "train", "--method", method, "--dataset", "shards",
            "--data-path", os.path.join(shards, "cifar10-train.json"),
            "--test-path", os.path.join(shards, "cifar10-test.json"),
            "--unlabeled-path", os.path.join(shards, f"pool-{{000000..{pool_shards - 1:06d}}}.tar"),
            "--num-labeled", "4000", "--model", args.model, "--steps", str(steps), "--eval-every", "0",
            "--data-hp", f"workers={workers}", "--out", out, "--no-progress", "--device", "cpu"]


def run_measured(command: list) -> tuple:
    """(standard output, PeakRSS, wall seconds) of a command run from the repository root."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = PeakRSS(process.pid)
    out, err = process.communicate()
    peak.stop()
    if process.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{err[-3000:]}")
    return out, peak, time.perf_counter() - started


def run_summary(command: list) -> tuple:
    """(the run's summary, PeakRSS, wall seconds) of a `mentor train` command."""
    out, peak, seconds = run_measured(command)
    return json.loads(out[out.index("{"):]), peak, seconds


def mode_rss(args) -> None:
    rows = []
    for pool_shards in (10, 100):
        out = os.path.join(args.work, "runs", f"rss-{pool_shards}")
        subprocess.run(["rm", "-rf", out])
        command = train_args(args, pool_shards, out, args.steps, args.workers)
        summary, peak, seconds = run_summary(command)
        rows.append(f"| {pool_shards * 10_000 + 50_000:,} | {args.steps} | {args.workers} | {peak.main / 2**20:.0f} MB | "
                    f"{peak.total / 2**20:.0f} MB | {summary['seconds_per_step']:.3f} s | {seconds:.0f} s |")
    print(f"\n`python bench/shards.py rss --steps {args.steps} --workers {args.workers} --model {args.model}` "
          f"({machine()}): FixMatch, CIFAR-10 with 4,000 labels from shards, the pool streamed\n")
    print("| pool (CIFAR train + extra) | steps | workers | peak RSS, trainer | peak PSS, trainer + workers | "
          "s/step | wall |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"\ncommand (1M): {' '.join(train_args(args, 100, 'OUT', args.steps, args.workers))}")


def mode_step(args) -> None:
    rows = []
    memory = [*MENTOR, "train", "--method", "fixmatch", "--dataset", "image_folder", "--data-path",
              cifar_folder(args.work), "--num-labeled", "4000", "--model", args.model, "--steps", str(args.steps),
              "--eval-every", "0", "--no-progress", "--device", "cpu"]
    runs = [("in memory (image_folder, decoded once)", memory + ["--out", os.path.join(args.work, "runs", "mem")])]
    for workers in (0, 1, 2):
        runs.append((f"shards, {workers} worker(s)",
                     train_args(args, 10, os.path.join(args.work, "runs", f"step-w{workers}"), args.steps, workers)))
    for label, command in runs:
        subprocess.run(["rm", "-rf", command[command.index("--out") + 1]])
        summary, peak, _ = run_summary(command)
        rows.append(f"| {label} | {summary['seconds_per_step']:.3f} s | {peak.total / 2**20:.0f} MB |")
    print(f"\n`python bench/shards.py step --steps {args.steps} --model {args.model}` ({machine()}): FixMatch on "
          "CIFAR-10-4000, 64 labeled + 448 unlabeled per step, pool 150k (CIFAR train + the first 100k)\n")
    print("| data | seconds per step (mean over the run) | peak PSS, all processes |")
    print("| --- | --- | --- |")
    print("\n".join(rows))


def mode_noisy_student(args) -> None:
    shards = os.path.join(args.work, "shards")
    out = os.path.join(args.work, "runs", f"ns-{args.pool_shards}")
    command = [*MENTOR, "noisy-student", "--dataset", "shards", "--data-path", os.path.join(shards, "cifar10-train.json"),
               "--test-path", os.path.join(shards, "cifar10-test.json"),
               "--unlabeled-path", os.path.join(shards, f"pool-{{000000..{args.pool_shards - 1:06d}}}.tar"),
               "--num-labeled", "4000", "--model", args.model, "--steps", str(args.steps), "--eval-every", "0",
               "--rounds", "1", "--data-hp", f"workers={args.workers}", "--out", out, "--no-progress",
               "--device", "cpu"]
    _, peak, seconds = run_measured(command)
    rounds = json.load(open(os.path.join(out, "rounds.json")))["rounds"]
    print(f"\n`python bench/shards.py noisy-student --steps {args.steps} --pool-shards {args.pool_shards} "
          f"--workers {args.workers} --model {args.model}` ({machine()})\n")
    print(f"command: {' '.join(command)}\n")
    print(json.dumps(rounds, indent=1))
    print(f"\nwall {seconds:.0f} s, peak RSS {peak.main / 2**20:.0f} MB (pipeline), "
          f"{peak.total / 2**20:.0f} MB PSS (with workers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("data", "decode", "rss", "step", "noisy-student"))
    parser.add_argument("--work", default="/tmp/mentor_shards_bench")
    parser.add_argument("--pool", type=int, default=1_000_000, help="data: pool size (a multiple of 10,000)")
    parser.add_argument("--pool-shards", type=int, default=100, help="noisy-student: pool shards (10,000 each)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", default="small_cnn")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    {"data": mode_data, "decode": mode_decode, "rss": mode_rss, "step": mode_step,
     "noisy-student": mode_noisy_student}[args.mode](args)


if __name__ == "__main__":
    main()
