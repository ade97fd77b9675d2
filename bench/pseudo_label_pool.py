"""`mentor pseudo-label` on a pool far larger than one batch: peak memory stays flat as the pool grows.

    python bench/pseudo_label_pool.py --sizes 100000 1000000 --work /tmp/pool_bench

1. Writes pools of N Fashion-MNIST-like images (uint8, 1x28x28) to .npy files, chunk by chunk:
   training images of Fashion-MNIST, each shifted by up to 2 px and with a little noise, so
   the teacher's labels mean something (1,000,000 images = 784 MB).
2. Trains a small teacher once (`mentor train --dataset fashion_mnist --num-labeled 1000
   --steps 300`).
3. Runs `mentor pseudo-label TEACHER --data POOL.npy --out LABELS` in a child process per
   size and reports its peak resident memory (ru_maxrss), wall time and throughput, and
   checks the labels (count, agreement of the argmax with the source image's class).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

from mentor.data import load_dataset
from mentor.pseudo_labels import read_labels


def write_pool(path: str, n: int, seed: int = 0, chunk: int = 50_000) -> np.ndarray:
    """The pool file, written chunk by chunk (never whole in memory); returns each image's source class."""
    ds = load_dataset("fashion_mnist")
    rng = np.random.default_rng(seed)
    source = rng.integers(len(ds.x_train), size=n)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (n,) + ds.x_train.shape[1:]})
        for start in range(0, n, chunk):
            idx = source[start:start + chunk]
            images = ds.x_train[idx].astype(np.int16)
            dy, dx = rng.integers(-2, 3, size=2)
            images = np.roll(images, (int(dy), int(dx)), axis=(2, 3))
            images += rng.integers(-8, 9, size=images.shape, dtype=np.int16)
            f.write(np.clip(images, 0, 255).astype(np.uint8).tobytes())
    return ds.y_train[source]


def resident_mb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--work", default="/tmp/pool_bench")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--shard-size", type=int, default=65536)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    mentor = [sys.executable, "-m", "mentor.cli"]
    teacher = os.path.join(args.work, "teacher")
    if not os.path.exists(os.path.join(teacher, "summary.json")):
        subprocess.run(mentor + ["train", "--dataset", "fashion_mnist", "--num-labeled", "1000", "--steps", "300",
                                 "--out", teacher, "--no-progress"], check=True)
    rows = []
    for n in args.sizes:
        pool = os.path.join(args.work, f"pool-{n}.npy")
        classes_path = pool + ".classes.npy"
        if not os.path.exists(classes_path):
            np.save(classes_path, write_pool(pool, n))
        out = os.path.join(args.work, f"labels-{n}")
        shutil.rmtree(out, ignore_errors=True)  # measure a whole labelling, not a resumed one
        command = mentor + ["pseudo-label", teacher, "--data", pool, "--out", out, "--no-progress",
                            "--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size)]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        trace = []  # resident MB every second, to see whether memory plateaus or grows with the pool
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            trace.append(resident_mb(child.pid))
            time.sleep(1.0)
        seconds = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"pseudo-label failed for {n}: status {status}")
        labels = read_labels(out)
        agree = float((labels.argmax == np.load(classes_path)).mean())
        rows.append({"pool": n, "file_mb": round(os.path.getsize(pool) / 2**20), "peak_rss_mb": round(usage.ru_maxrss / 1024),
                     "seconds": round(seconds, 1), "rss_trace_mb": trace, "examples_per_s": round(n / seconds), "labeled": len(labels.argmax),
                     "argmax_agrees_with_source_class": round(agree, 4), "machine": platform.processor() or platform.machine(),
                     "date": time.strftime("%Y-%m-%d")})
        print(json.dumps(rows[-1]))
    for r in rows:
        print(f"pool {r['pool']:,}: resident MB each second: {r['rss_trace_mb']}")
    print("\n| pool | file | peak RSS of `mentor pseudo-label` | wall | examples / s | argmax = source class |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['pool']:,} | {r['file_mb']} MB | {r['peak_rss_mb']} MB | {r['seconds']} s | "
              f"{r['examples_per_s']:,} | {100 * r['argmax_agrees_with_source_class']:.1f}% |")


if __name__ == "__main__":
    main()
