"""`mentor report RUN [RUN ...] --out report.html`: a run's curves and final confusion matrix, runs overlaid.

Reads each run folder's metrics.jsonl (one line per evaluation), summary.json and config.json,
and writes next to the HTML file (every file written atomically, and only once every run has
been read, so a bad run folder leaves nothing behind):
- accuracy.png: test accuracy of every evaluated model (the method's model, its EMA, its
  teacher) against steps and against wall-clock seconds, one colour per run, one line style
  per model; validation accuracy too where the run held a validation split;
- losses.png: every training loss term against steps; masks.png: mask rates and pseudo-label
  confidences (FixMatch, UDA, MPL's teacher); lr.png: each optimizer's learning rate;
- confusion-K.png per run: the confusion matrix of the run's evaluated model on its test
  split (the run's dataset is loaded again for it; when it cannot be, the page says why).
"""
from __future__ import annotations

import html
import io
import os
from typing import Dict, List

import numpy as np

from .files import read_json, read_jsonl, write_atomically
from .errors import ConfigError, DataError

MODEL_STYLES = {"": "-", "ema_": "--", "teacher_": ":"}
MASK_WORDS = ("mask", "confidence", "clean_fraction")


def _model_folder(run_dir: str) -> dict:
    """A folder that holds a model without training curves: what `mentor compare --fit-best`
    delivers when a classical baseline or the ensemble wins (model.json), or a baseline's cell."""
    from .classical import ENSEMBLE_FILE, MODEL_FILE, MODEL_INFO, TEST_PREDICTIONS, read_json

    info = read_json(os.path.join(run_dir, MODEL_INFO)) or {}
    kind = info.get("kind") or ("ensemble" if os.path.exists(os.path.join(run_dir, ENSEMBLE_FILE)) else "classical")
    truth = None
    for name, keys in ((TEST_PREDICTIONS, ("y_true", "y_pred")), ("predictions.npz", ("test_true", "test_pred"))):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            with np.load(path) as archive:
                if all(k in archive.files for k in keys):
                    truth = (archive[keys[0]], archive[keys[1]])
                    break
    summary = {"method": info.get("entry", kind), "kind": kind}
    if truth is not None:
        summary["final_test_accuracy"] = float(np.mean(truth[0] == truth[1]))
    config = read_json(os.path.join(run_dir, "config.json")) or {}
    spec = read_json(os.path.join(run_dir, "inference.json")) or {}
    if not info and not os.path.exists(os.path.join(run_dir, MODEL_FILE)):
        raise DataError(f"{run_dir} is neither a run folder (no metrics.jsonl) nor a model folder")
    return {"dir": run_dir, "name": os.path.basename(os.path.normpath(run_dir)), "records": [], "summary": summary,
            "config": {"dataset": spec.get("dataset"), **config, "method": summary["method"]}, "model_info": info, "test": truth,
            "class_names": spec.get("class_names"), "num_classes": spec.get("num_classes")}


def read_run(run_dir: str) -> dict:
    from .classical import ENSEMBLE_FILE, MODEL_FILE, MODEL_INFO

    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path) and any(os.path.exists(os.path.join(run_dir, f))
                                        for f in (MODEL_INFO, MODEL_FILE, ENSEMBLE_FILE)):
        return _model_folder(run_dir)
    if not os.path.isfile(path):
        raise DataError(f"{run_dir} is not a run folder with evaluations: no metrics.jsonl (train with --out, "
                        "and --eval-every > 0 for curves)")
    records = read_jsonl(path)
    if not records:
        raise DataError(f"{path} holds no evaluation yet")
    run = {"dir": run_dir, "name": os.path.basename(os.path.normpath(run_dir)), "records": records}
    for name in ("summary", "config"):
        file = os.path.join(run_dir, f"{name}.json")
        run[name] = {}
        if os.path.exists(file):
            run[name] = read_json(file)
    return run


def _series(records: List[dict], key: str, sub: str = None):
    points = [(r["step"], r.get("wall_s", r.get("elapsed_s")), (r.get(sub) or {}).get(key) if sub else r.get(key))
              for r in records]
    return [(s, t, v) for s, t, v in points if v is not None]


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def accuracy_figure(runs: List[dict]) -> bytes:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for colour, run in zip(plt.cm.tab10.colors * 3, runs):
        for split in ("test", "val"):
            for prefix, style in MODEL_STYLES.items():
                points = _series(run["records"], f"{prefix}{split}_accuracy")
                if not points:
                    continue
                label = f"{run['name']}: {(prefix.rstrip('_') or 'model')} {split}"
                steps, seconds, acc = zip(*points)
                kwargs = dict(color=colour, linestyle=style, alpha=1.0 if split == "test" else 0.5, label=label)
                axes[0].plot(steps, 100 * np.array(acc), **kwargs)
                if all(s is not None for s in seconds):
                    axes[1].plot(seconds, 100 * np.array(acc), **kwargs)
    for ax, xlabel in zip(axes, ("step", "seconds (training, evaluation and checkpoints)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[0].set_title("accuracy against steps", fontsize=9)
    axes[1].set_title("accuracy against wall-clock seconds", fontsize=9)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def keyed_figure(runs: List[dict], sub: str, keys: List[str], title: str, log: bool = False):
    import matplotlib.pyplot as plt

    if not keys:
        return None
    columns = min(3, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for colour, run in zip(plt.cm.tab10.colors * 3, runs):
            points = _series(run["records"], key, sub)
            if points:
                steps, _, values = zip(*points)
                ax.plot(steps, values, color=colour, label=run["name"])
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if log and all(v > 0 for run in runs for _, _, v in _series(run["records"], key, sub)):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def confusion_figure(run: dict) -> bytes:
    """The run's evaluated model on its test split (the dataset is loaded again; a model folder's
    saved test predictions)."""
    import torch

    from .train import load_run

    if "model_info" in run:
        if run["test"] is None:
            raise DataError("the model folder holds no test-split predictions")
        truth, predictions = run["test"]
        names = run["class_names"] or list(range(run["num_classes"] or int(max(truth.max(), predictions.max()) + 1)))
        return _confusion_png(truth, predictions, names, f"{run['name']}: test split")
    trainer = load_run(run["dir"], device="cpu")
    model = trainer.method.eval_model().eval()
    truth, predictions = [], []
    with torch.no_grad():  # the test split in memory or streamed from shards, batch by batch
        for x, y in trainer.test_pool.batches(1024, workers=trainer.dataset.workers, device=trainer.device):
            predictions.append(model(trainer.views.eval(x)).argmax(-1))
            truth.append(y)
    predictions, truth = torch.cat(predictions).numpy(), torch.cat(truth).numpy()
    names = trainer.dataset.class_names or list(range(trainer.dataset.num_classes))
    return _confusion_png(truth, predictions, names, f"{run['name']}: test split, step {trainer.step}")


def _confusion_png(truth: np.ndarray, predictions: np.ndarray, names: list, title: str) -> bytes:
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(truth, predictions, labels=list(range(len(names))),
                                            display_labels=names, ax=ax, colorbar=False, cmap="Blues",
                                            xticks_rotation=45 if len(names) > 4 else "horizontal")
    accuracy = float((predictions == truth).mean())
    ax.set_title(f"{title} (accuracy {100 * accuracy:.2f}%)", fontsize=9)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def _train_keys(runs: List[dict]) -> List[str]:
    keys = dict.fromkeys(k for run in runs for r in run["records"] for k in (r.get("train") or {}))
    return list(keys)


def write_report(run_dirs: List[str], out: str) -> Dict[str, str]:
    """Writes out (HTML) and its PNGs beside it; returns {file: what it shows}."""
    import matplotlib

    matplotlib.use("Agg")
    if not out.endswith((".html", ".htm")):
        raise ConfigError(f"--out {out!r}: give the report's file name, ending in .html (PNGs go beside it)")
    if not run_dirs:
        raise ConfigError("mentor report needs at least one run folder")
    runs = [read_run(d) for d in run_dirs]  # every run read before anything is written
    keys = _train_keys(runs)
    masks = [k for k in keys if any(w in k for w in MASK_WORDS)]
    losses = [k for k in keys if k not in masks]
    lr_keys = list(dict.fromkeys(k for run in runs for r in run["records"] for k in (r.get("lr") or {})))
    figures = {"accuracy.png": (accuracy_figure(runs), "accuracy of every evaluated model"),
               "losses.png": (keyed_figure(runs, "train", losses, "training losses (mean over each interval)", log=True),
                              "training losses"),
               "masks.png": (keyed_figure(runs, "train", masks, "mask rates and confidences"), "mask rates"),
               "lr.png": (keyed_figure(runs, "lr", lr_keys, "learning rates"), "learning rates")}
    notes = {}
    for k, run in enumerate(runs):
        try:
            figures[f"confusion-{k}.png"] = (confusion_figure(run), f"confusion matrix of {run['name']}")
        except Exception as exc:  # the curves stand without it; the page says why it is missing
            notes[run["name"]] = f"no confusion matrix: {type(exc).__name__}: {exc}"
    folder = os.path.dirname(os.path.abspath(out))
    written = {}
    for name, (data, what) in figures.items():
        if data is not None:
            write_atomically(os.path.join(folder, name), lambda f, d=data: f.write(d))
            written[os.path.join(folder, name)] = what
    page = render_html(runs, [n for n in figures if figures[n][0] is not None], notes)
    write_atomically(out, lambda f: f.write(page.encode()))
    written[out] = "the report"
    return written


def _model_words(run: dict) -> str:
    """A model folder's line: what it is (no training curves), its members and validation."""
    if "model_info" not in run:
        return ""
    info = run["model_info"]
    if run["summary"]["kind"] == "ensemble":
        what = "an ensemble of " + ", ".join(f"{m['entry']} ({m['weight']:.2f})" for m in info.get("members", []))
    else:
        what = f"a classical model, {info.get('estimator', 'scikit-learn')}"
    val = (info.get("validation") or {}).get("accuracy")
    return what + (f"; validation {100 * val:.1f}%" if val is not None else "") + "; no training curves"


def render_html(runs: List[dict], images: List[str], notes: Dict[str, str]) -> str:
    rows = []
    for run in runs:
        s, c = run["summary"], run["config"]
        finals = ", ".join(f"{k[len('final_'):]} {100 * v:.2f}%" for k, v in s.items()
                           if k.startswith("final_") and k.endswith("accuracy"))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            run["name"], c.get("method", s.get("method", "?")), c.get("dataset", s.get("dataset", "?")),
            c.get("num_labeled", "?"), run["records"][-1]["step"] if run["records"] else "–",
            finals or ("–" if "model_info" in run else "(unfinished)"),
            "; ".join(filter(None, (_model_words(run), notes.get(run["name"], "")))))) + "</tr>")
    body = "\n".join(f'<h2>{html.escape(name)}</h2><img src="{name}" alt="{name}">' for name in images)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mentor report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}} img{{max-width:100%}} h2{{font-size:15px}}</style>
</head><body><h1>mentor report</h1>
<table><tr><th>run</th><th>method</th><th>dataset</th><th>labels</th><th>last step</th><th>final accuracies</th><th>notes</th></tr>
{chr(10).join(rows)}</table>
<p>Solid lines: the method's evaluated model; dashed: its EMA; dotted: its teacher. Faint lines: validation split.
Figures are the final evaluations, never the best.</p>
{body}
</body></html>
"""
