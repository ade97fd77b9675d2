"""Mean Teacher's claim: after the early phase the EMA teacher is more accurate than the student.

    python bench/mean_teacher_curves.py --dataset fashion_mnist --steps 3000 --eval-every 100

One mean_teacher run (the Fashion-MNIST benchmark's settings: 1,000 labels, small CNN,
32 + 224 per step), evaluating student and teacher on the test split every --eval-every
steps. Writes docs/mean_teacher_curves.png and prints how often, after the first 10% of
the steps, the teacher was ahead. The run folder is bench/runs/mean_teacher_curves.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mentor.train import TrainConfig, train  # noqa: E402

HERE = os.path.dirname(__file__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default=os.path.join(HERE, "..", "docs", "mean_teacher_curves.png"))
    args = parser.parse_args()
    out = os.path.join(HERE, "runs", "mean_teacher_curves")
    shutil.rmtree(out, ignore_errors=True)
    images = args.dataset != "digits"
    config = TrainConfig(
        method="mean_teacher", dataset=args.dataset, num_labeled=1000 if images else 50,
        model="small_cnn" if images else "mlp",
        model_options={"widths": [16, 32, 64]} if images else {"hidden": [128]},
        steps=args.steps, batch_size=32 if images else 50, unlabeled_batch_size=224, optimizer="nesterov",
        lr=0.03, weight_decay=5e-4, schedule="cosine", eval_every=args.eval_every, seed=args.seed,
        input_noise=None if images else 0.05, device="cpu", out=out, progress=False)
    summary = train(config)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    steps = [r["step"] for r in records]
    student = [100 * r["test_accuracy"] for r in records]
    teacher = [100 * r["teacher_test_accuracy"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, student, label="student")
    ax.plot(steps, teacher, label="EMA teacher")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Mean Teacher on {args.dataset}, seed {args.seed}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.png), exist_ok=True)
    fig.savefig(args.png, dpi=120)
    late = [(s, t) for step, s, t in zip(steps, student, teacher) if step > args.steps // 10]
    ahead = sum(t > s for s, t in late)
    print(json.dumps({"final_student": student[-1], "final_teacher": teacher[-1],
                      "teacher_ahead_after_first_10pct": f"{ahead}/{len(late)}",
                      "mean_gap_after_first_10pct": round(sum(t - s for s, t in late) / len(late), 3),
                      "wall_seconds": summary["wall_seconds"], "png": args.png}, indent=2))


if __name__ == "__main__":
    main()
