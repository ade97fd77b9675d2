"""The TwoMoon experiment of Meta Pseudo Labels (seeds/001, section 3.1, Figure 2).

Setup, as the paper states it: 2,000 points in two moons of 1,000; 6 labeled (3 per moon);
a fully connected net with two hidden layers of 8 sigmoid units; teacher and student of the
same architecture with independent weights; SGD with a constant learning rate of 0.1;
weights initialised from U(-0.1, 0.1); no regularisation. Success = accuracy >= 95% on all
2,000 points (the paper evaluates transductively: the points are the unlabeled data).

What the paper leaves open (number of steps, moon noise, batch sizes, the teacher's
auxiliary losses, the feedback form) is a field of TwoMoonSettings, so the ablation in
bench/two_moons_ablation.py can vary it; the defaults are the settings that
BENCHMARKS.md reports and justifies.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

PAPER_MODEL = {"hidden": [8, 8], "activation": "sigmoid", "init": "uniform:0.1"}
SUCCESS_ACCURACY = 0.95
METHODS = ("supervised", "pseudo_label", "meta_pseudo_labels")
TITLES = {"supervised": "Supervised", "pseudo_label": "Pseudo Labels", "meta_pseudo_labels": "Meta Pseudo Labels"}


@dataclass
class TwoMoonSettings:
    steps: int = 6000               # per model: supervised trains this long, Pseudo Labels' teacher
                                    # and then its student each this long, MPL's pair together
    noise: float = 0.1              # std of the Gaussian noise of scikit-learn's make_moons
    num_points: int = 2000
    num_labeled: int = 6
    lr: float = 0.1
    unlabeled_batch_size: int = 256   # a random quarter-epoch of the 2,000 points per step
    strong_noise: Optional[float] = None  # Gaussian strong view -> UDA on MPL's teacher
    # Algorithm 1: sampled labels, the scalar dot feedback, teacher with supervised CE, a student
    # that learns from the teacher's labels alone.
    mpl: Dict = field(default_factory=lambda: {"labels": "sample", "feedback": "dot", "student_labeled_weight": 0.0})
    # The MPL student starts after the teacher trained alone for this fraction of the steps,
    # as the official code does (3k steps on CIFAR): an unsure teacher's samples are coin flips.
    mpl_student_wait: float = 0.5
    pseudo_label: Dict = field(default_factory=lambda: {"labels": "argmax"})


def make_problem(seed: int, settings: TwoMoonSettings):
    from ..data import ArrayDataset
    from ..data.sources.builtin import make_two_moons

    x, y = make_two_moons(settings.num_points, settings.noise, seed)
    # Transductive, as the paper: the test set is the 2,000 points themselves.
    return ArrayDataset("two_moons", x, y, x, y, num_classes=2)


def train_config(method: str, seed: int, settings: TwoMoonSettings):
    from ..train import TrainConfig

    steps, options = settings.steps, {}
    if method == "pseudo_label":
        steps, options = 2 * settings.steps, {"teacher_steps": settings.steps, **settings.pseudo_label}
    elif method == "meta_pseudo_labels":
        options = {"student_wait_steps": int(settings.mpl_student_wait * steps), **settings.mpl}
    return TrainConfig(
        method=method, dataset="two_moons", num_labeled=settings.num_labeled, model="mlp",
        model_options=dict(PAPER_MODEL), method_options=options, steps=steps,
        batch_size=settings.num_labeled, unlabeled_batch_size=settings.unlabeled_batch_size,
        optimizer="sgd", lr=settings.lr, momentum=0.0, weight_decay=0.0, schedule="constant",
        eval_every=0, strong_noise=settings.strong_noise if method == "meta_pseudo_labels" else None,
        seed=seed, device="cpu", progress=False)


def grid_points(x: np.ndarray, size: int = 150):
    lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], size), np.linspace(lo[1], hi[1], size))
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)


def run_one(method: str, seed: int, settings: TwoMoonSettings, with_grid: bool = False) -> dict:
    """Train one method on the problem drawn with this seed; accuracy on all points."""
    import torch

    from ..train import Trainer

    torch.set_num_threads(1)  # tiny nets: threads cost more than they give; seeds run in parallel
    problem = make_problem(seed, settings)
    trainer = Trainer(train_config(method, seed, settings), dataset=problem)
    summary = trainer.fit()
    result = {"method": method, "seed": seed, "accuracy": summary["final_test_accuracy"],
              "labeled": trainer.split.labeled}
    if with_grid:
        gx, gy, pts = grid_points(problem.x_train)
        with torch.no_grad():
            model = trainer.method.eval_model().eval()
            pred = model(torch.from_numpy(pts)).argmax(-1).numpy().reshape(gx.shape)
        result["grid"] = (gx, gy, pred)
    return result


def _run_packed(args):
    return run_one(*args)


def run_many(methods, seeds: List[int], settings: TwoMoonSettings, workers: int = 2,
             grid_seed: Optional[int] = None, progress: bool = True) -> List[dict]:
    jobs = [(m, s, settings, s == grid_seed) for m in methods for s in seeds]
    if workers <= 1:
        return [_run_packed(job) for job in jobs]
    from tqdm.auto import tqdm

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(_run_packed, jobs), total=len(jobs), disable=not progress,
                         desc="two moons", leave=False))


def summarise(results: List[dict], methods) -> Dict[str, dict]:
    table = {}
    for m in methods:
        accs = [r["accuracy"] for r in results if r["method"] == m]
        table[m] = {"success_rate": float(np.mean([a >= SUCCESS_ACCURACY for a in accs])),
                    "mean_accuracy": float(np.mean(accs)), "accuracies": accs}
    return table


def format_table(table: Dict[str, dict]) -> str:
    lines = [f"{'method':22s} {'success':>8s} {'mean acc':>9s}   (success = accuracy >= 95% on all points)"]
    for m, row in table.items():
        lines.append(f"{TITLES.get(m, m):22s} {row['success_rate']:8.0%} {row['mean_accuracy']:9.3f}")
    return "\n".join(lines)


def plot_figure(results: List[dict], settings: TwoMoonSettings, seed: int, path: str) -> None:
    """Figure 2: decision regions of the three methods on one problem, labeled points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    problem = make_problem(seed, settings)
    x, y = problem.x_train, problem.y_train
    panels = [r for r in results if r.get("grid") is not None and r["seed"] == seed]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, r in zip(np.atleast_1d(axes), panels):
        gx, gy, pred = r["grid"]
        ax.contourf(gx, gy, pred, levels=[-0.5, 0.5, 1.5], cmap=ListedColormap(["#f4b6b6", "#b8e0b8"]))
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 0, "#b03030", "#2f7d2f"), s=3, alpha=0.5)
        lab = np.array(r["labeled"])
        ax.scatter(x[lab, 0], x[lab, 1], c=np.where(y[lab] == 0, "#b03030", "#2f7d2f"), s=90,
                   marker="*", edgecolors="black", linewidths=0.8)
        ax.set_title(f"{TITLES[r['method']]}: {r['accuracy']:.1%}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"TwoMoon (seed {seed}, {settings.steps} steps, moon noise {settings.noise})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(seeds: int = 10, out: str = "demo_out", workers: int = 2, progress: bool = True,
             settings: Optional[TwoMoonSettings] = None, first_seed: int = 0) -> dict:
    """`mentor demo`: the three methods on `seeds` TwoMoon problems; table, figure and JSON."""
    from ..errors import ConfigError

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    settings = settings or TwoMoonSettings()
    os.makedirs(out, exist_ok=True)
    seed_list = list(range(first_seed, first_seed + seeds))
    started = time.perf_counter()
    results = run_many(METHODS, seed_list, settings, workers=workers, grid_seed=seed_list[0], progress=progress)
    table = summarise(results, METHODS)
    report = {"methods": table,
              "settings": {**asdict(settings), "seeds": seed_list, "model": PAPER_MODEL,
                           "optimizer": "sgd, constant lr, no momentum, no weight decay",
                           "success_threshold": SUCCESS_ACCURACY, "evaluation": "all points (transductive)",
                           "wall_seconds": round(time.perf_counter() - started, 1)}}
    with open(os.path.join(out, "two_moons.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot_figure(results, settings, seed_list[0], os.path.join(out, "two_moons.png"))
    print(f"TwoMoon, {seeds} seeds, {settings.steps} steps, moon noise {settings.noise} "
          f"({report['settings']['wall_seconds']} s)")
    print(format_table(table))
    print(f"wrote {os.path.join(out, 'two_moons.json')} and {os.path.join(out, 'two_moons.png')}")
    return report
