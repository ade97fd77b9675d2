"""What a comparison shows: the tables on stdout, the verdict sentences, and report.html with
its figures (each entry's accuracy with its interval and per-cell points, time per entry, and
for studies the difference to supervised training across the study's settings)."""
from __future__ import annotations

import html
import math
import os
from typing import Dict, List, Optional

import numpy as np

from ..files import write_atomically
from ..report import png_bytes


def pct(value: Optional[float], signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _interval(pair, signed: bool = False) -> str:
    return f"[{pct(pair[0], signed)}, {pct(pair[1], signed)}]" if pair else ""


def _difference(fig: dict) -> str:
    if "difference" not in fig:
        return "–"
    return f"{pct(fig['difference'], True)} {_interval(fig['difference_interval'], True)}"


# A verdict says whether the unlabeled data helps; for a supervised baseline (no unlabeled
# data) the same interval says only how it compares with mentor's supervised network.
SUPERVISED_WORDS = {"helps": "better", "hurts": "worse", "no measurable difference": "no measurable difference"}


def verdict_word(row: dict, figures: dict) -> str:
    word = figures.get("verdict")
    if word is None:
        return "–"
    return word if row.get("semi_supervised", True) else SUPERVISED_WORDS[word] + " (labels only)"


def table_rows(table: dict, folds: int, test: bool = True) -> (List[str], List[List[str]]):
    """(header, rows) of one setting's table: validation columns with folds, test columns."""
    split = "val" if folds else "test"
    where = "validation" if folds else "test"
    header = ["method", f"{where} accuracy [95% CI]", f"vs supervised on {where} [95% CI]", "verdict"]
    if folds and test:
        header += ["test accuracy (mean ± sd over cells)"]
    header += ["s / cell"]
    rows = []
    for row in table["rows"]:
        fig = row.get(split, {})
        name = row["label"] + {"reference": " (AutoGluon, reference: never chosen)",
                               "ensemble": " (of the entries' fold models)"}.get(row.get("kind"),
                                                                               " (scikit-learn)" if row["baseline"] else "")
        cells = [name, f"{pct(fig.get('accuracy'))} {_interval(fig.get('interval'))}".strip(),
                 _difference(fig), verdict_word(row, fig)]
        if folds and test:
            cells.append(f"{pct(row['test_accuracy'])} ± {pct(row['test_std'])}" if "test_accuracy" in row else "–")
        cells.append(f"{row['seconds_per_cell']:.1f}" if "seconds_per_cell" in row else "–")
        rows.append(cells)
    return header, rows


def verdict_lines(table: dict) -> List[str]:
    """The answer in words: the choice, whether its gain is measurable, and what the test split
    (never used for it) says of it."""
    if table.get("chosen") is None:
        return ["No validation folds (--folds 0): a benchmark on the test split; nothing is chosen."]
    rows = {r["label"]: r for r in table["rows"]}
    chosen, res = rows[table["chosen"]], table["resolution"]
    lines = []
    measured = "" if res["half_width"] is None else \
        f"; the differences measured here have intervals of about ±{100 * res['half_width']:.1f} points (median)"
    lines.append(f"Resolution: {res['units']} distinct held-out examples; no difference under "
                 f"{100 * res['floor']:.1f} points ({res['floor_examples']} examples, all the same way) can be told "
                 f"apart{measured}.")
    val = chosen["val"]
    if chosen.get("kind") == "ensemble":
        lines.append(f"Choice: the ensemble ({_members(table['ensemble'])}; each entry's fold models averaged), validation "
                     f"{pct(val['accuracy'])}, {pct(val['difference'], True)} "
                     f"{_interval(val['difference_interval'], True)} over supervised.")
    elif chosen["label"] == "supervised":
        lines.append(f"Choice: supervised (validation {pct(val['accuracy'])}). No entry beats training on the labels "
                     "alone on validation: the unlabeled data does not help here.")
    elif chosen["baseline"]:
        best = rows[table["best_network"]]
        gap = val["accuracy"] - best["val"]["accuracy"]
        kind = "with the unlabeled data" if chosen["semi_supervised"] else "labels only"
        lines.append(f"Choice: {chosen['label']} (scikit-learn, {kind}) scores best on validation: "
                     f"{pct(val['accuracy'])}, {pct(val['difference'], True)} "
                     f"{_interval(val['difference_interval'], True)} over mentor's supervised network and "
                     f"{100 * gap:.1f} points above the best mentor network, {best['label']} "
                     f"({pct(best['val']['accuracy'])}). On this data the classical model is the one to try first.")
    else:
        words = {"helps": "the unlabeled data helps: the interval excludes zero",
                 "no measurable difference": "but the interval holds zero: this validation cannot tell it from "
                                             "supervised training",
                 "hurts": "and yet it is measurably below supervised training"}[val["verdict"]]
        lines.append(f"Choice: {chosen['label']} (validation {pct(val['accuracy'])}, "
                     f"{pct(val['difference'], True)} {_interval(val['difference_interval'], True)} over supervised); "
                     f"{words}.")
    rule = table.get("rule", "validation")
    others = {name: label for name, label in (table.get("rule_choices") or {}).items() if name != rule}
    lines.append(f"Chosen by the rule '{rule}' ({RULE_WORDS[rule]}); the other rules would choose: "
                 + "; ".join(f"{name}: {label}" for name, label in others.items()) + ".")
    if "ensemble" in table:
        lines.append(ensemble_line(table["ensemble"]))
    reference = [r for r in table["rows"] if r.get("kind") == "reference" and "val" in r]
    for r in reference:
        if r["val"]["accuracy"] > val["accuracy"]:
            lines.append(f"{r['label']} scored higher on validation ({pct(r['val']['accuracy'])}); it is a reference: "
                         "its models are AutoGluon's own (pickles), which mentor neither chooses nor delivers.")
    for label in table.get("at_chance") or []:
        row = rows[label]
        why = ("too few labeled rows for its settings (a tree needs several per leaf)" if row["baseline"] else
               "too few steps, or a learning rate too small or too large for this data")
        lines.append(f"{label} is at chance level on validation ({pct(row['val']['accuracy'])}; always answering the "
                     f"largest class scores {pct(table['chance'])}): it learned nothing here, likely {why}.")
    contenders = sum(1 for r in table["rows"] if r["label"] != "supervised" and "val" in r)
    if contenders > 1 and chosen["label"] != "supervised":
        lines.append(f"The intervals are per comparison. The choice is the best of {contenders + 1} noisy validation "
                     "figures, so its gain on new data is likely smaller than on validation (the test columns, where "
                     "there are any, show by how much).")
    if "regret" in table:
        best = rows[table["best_on_test"]]
        lines.append(f"Test split (not used for the choice): {chosen['label']} {pct(chosen.get('test_accuracy'))}; "
                     f"the best on test is {best['label']} {pct(best['test_accuracy'])}: regret "
                     f"{100 * table['regret']:.1f} points.")
    return lines


RULE_WORDS = {"validation": "the single entry best on validation",
              "significant": "the best on validation whose interval over supervised excludes zero, else the best of "
                             "supervised training and the classical baselines",
              "ensemble": "the ensemble",
              "validation+ensemble": "the best on validation, the ensemble's figure included"}


def _members(description: dict) -> str:
    return ", ".join(f"{m['entry']} {m['weight']:.2f}" for m in description["members"])


def ensemble_line(description: dict) -> str:
    """What the ensemble is, and how optimistic its validation figure is."""
    line = (f"Ensemble: greedy selection (Caruana et al. 2004, {description['rounds']} rounds) over the entries' "
            f"held-out probabilities chose {_members(description)}. Its validation figure is optimistic: the weights were fitted "
            "on the same held-out predictions")
    if description.get("left_out"):
        line += (f" (left out: {', '.join(description['left_out'])}, whose cells hold no probabilities: made by an "
                 "older mentor; delete their cells and resume to include them)")
    optimism = description.get("optimism")
    if optimism:
        line += (f"; with weights fitted on half of the held-out examples and scored on the other half (both ways, "
                 f"{optimism['repeats']} random halvings) it scores {pct(optimism['nested'])} against "
                 f"{pct(optimism['in_sample'])}: {100 * optimism['optimism']:+.1f} points of optimism")
    return line + "."


def _markdown(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def format_tables(result: dict) -> str:
    """Every setting's table and verdict, as Markdown (what `mentor compare` prints)."""
    folds = result["settings"]["folds"]
    config = result["settings"]["config"]
    parts = [f"mentor compare: {config['dataset']}, "
             f"{config['num_labeled'] or 'all the'} labels, {config['steps']} steps, model {config['model']}; "
             f"{f'{folds} folds' if folds else 'every label trains (no folds)'} x seeds "
             f"{result['settings']['seeds']}; {len(result['cells'])} cells "
             f"({sum(c['seconds'] for c in result['cells']):.0f} s of training), {result['seconds']:.0f} s wall"]
    if result["settings"].get("held_test"):
        parts.append(result["settings"]["held_test"][0].upper() + result["settings"]["held_test"][1:] + ".")
    for name, table in result["tables"].items():
        header, rows = table_rows(table, folds, result["settings"]["test"])
        title = "" if len(result["tables"]) == 1 else f"\n## {name}\n"
        parts.append(f"{title}\n{_markdown(header, rows)}\n\n" + "\n".join(verdict_lines(table)))
    if len(result["tables"]) > 1:
        parts.append("\n## Across the study\n\n" + study_table(result))
    return "\n".join(parts)


def study_table(result: dict) -> str:
    """Entries x settings: the difference to supervised on validation (with --folds 0: on test)
    with its interval, and beside it the test split's (never used for a choice)."""
    folds = result["settings"]["folds"]
    names = list(result["tables"])
    both = folds and result["settings"]["test"]
    what = "validation / test" if both else "validation" if folds else "test"
    header = ["method"] + [f"{n}: vs supervised, {what} [95% CI]" for n in names]
    rows = []
    for label in result["settings"]["entries"]:
        cells = [label]
        for name in names:
            row = next(r for r in result["tables"][name]["rows"] if r["label"] == label)
            if label == "supervised":
                cells.append(f"accuracy {pct((row.get('val') or row.get('test') or {}).get('accuracy'))}"
                             + (f" / {pct(row.get('test_accuracy'))}" if both else ""))
                continue
            first = _difference(row.get("val" if folds else "test", {}))
            cells.append(first + (f" / {_difference(row.get('test', {}))}" if both else ""))
        rows.append(cells)
    return _markdown(header, rows)


# --- report.html ------------------------------------------------------------------------
def accuracy_figure(result: dict) -> bytes:
    import matplotlib.pyplot as plt

    folds = result["settings"]["folds"]
    split = "val" if folds else "test"
    names = list(result["tables"])
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6, 1.2 * len(result["settings"]["entries"]) + 2),
                                                     3.6 * len(names)), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[:, 0], names):
        rows = result["tables"][name]["rows"]
        for i, row in enumerate(rows):
            fig_ = row.get(split)
            colour = "tab:gray" if row["baseline"] else "tab:blue"
            points = row.get("fold_val_accuracies" if folds else "cell_test_accuracies") or []
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(points)), 100 * np.array(points), s=10, color=colour,
                       alpha=0.45, zorder=2)
            if fig_:
                lo, hi = fig_["interval"]
                ax.errorbar(i, 100 * fig_["accuracy"], yerr=[[100 * (fig_["accuracy"] - lo)], [100 * (hi - fig_["accuracy"])]],
                            fmt="o", color=colour, capsize=4, zorder=3)
            if folds and "test_accuracy" in row:
                ax.scatter(i + 0.25, 100 * row["test_accuracy"], marker="D", facecolors="none", edgecolors="tab:red",
                           zorder=3)
        ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3, axis="y")
        what = "validation (pooled held-out labels), 95% interval; points: each cell" if folds else \
            "test split, 95% interval; points: each cell"
        ax.set_title(f"{name}: {what}" + ("; red diamond: mean test accuracy (not used for the choice)" if folds else ""),
                     fontsize=8)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def time_figure(result: dict) -> bytes:
    import matplotlib.pyplot as plt

    rows = next(iter(result["tables"].values()))["rows"]
    labels = [r["label"] for r in rows if "seconds_per_cell" in r]
    seconds = [r["seconds_per_cell"] for r in rows if "seconds_per_cell" in r]
    fig, ax = plt.subplots(figsize=(max(6, 1.0 * len(labels) + 2), 3.2))
    ax.bar(range(len(labels)), seconds, color=["tab:gray" if r["baseline"] else "tab:blue" for r in rows
                                               if "seconds_per_cell" in r])
    ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("seconds per cell")
    if seconds and min(seconds) > 0 and max(seconds) / min(seconds) > 30:
        ax.set_yscale("log")
    ax.set_title("training time per cell (one fold of one seed)", fontsize=9)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def study_figure(result: dict) -> Optional[bytes]:
    """Each entry's difference to supervised across the study's settings, with its interval:
    on validation, and beside it on the test split where there is one (never used to choose)."""
    import matplotlib.pyplot as plt

    names = list(result["tables"])
    if len(names) < 2:
        return None
    folds, test = result["settings"]["folds"], result["settings"]["test"]
    splits = (["val"] if folds else []) + (["test"] if test else [])
    fig, axes = plt.subplots(1, len(splits), figsize=(7 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for label in result["settings"]["entries"]:
            if label == "supervised":
                continue
            points = []
            for x, name in enumerate(names):
                fig_ = next(r for r in result["tables"][name]["rows"] if r["label"] == label).get(split, {})
                if "difference" in fig_:
                    points.append((x, 100 * fig_["difference"], 100 * fig_["difference_interval"][0],
                                   100 * fig_["difference_interval"][1]))
            if points:
                x, d, lo, hi = map(np.array, zip(*points))
                line, = ax.plot(x, d, marker="o", label=label)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("difference to supervised training, points")
        ax.set_title("validation (the held-out labels)" if split == "val" else
                     "test split (not used for any choice)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def write_report(result: dict, path: str) -> Dict[str, str]:
    """report.html and its PNGs beside it, each written atomically; returns {file: what}."""
    import matplotlib

    matplotlib.use("Agg")
    folder = os.path.dirname(os.path.abspath(path))
    figures = {"compare-accuracy.png": (accuracy_figure(result), "accuracy of each entry with its interval"),
               "compare-time.png": (time_figure(result), "seconds per cell"),
               "compare-study.png": (study_figure(result), "difference to supervised across the study")}
    written = {}
    for name, (data, what) in figures.items():
        if data is not None:
            write_atomically(os.path.join(folder, name), lambda f, d=data: f.write(d))
            written[os.path.join(folder, name)] = what
    page = _html(result, [n for n, (d, _) in figures.items() if d is not None])
    write_atomically(path, lambda f: f.write(page.encode()))
    written[os.path.abspath(path)] = "the report"
    return written


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(result: dict, images: List[str]) -> str:
    folds = result["settings"]["folds"]
    sections = []
    for name, table in result["tables"].items():
        header, rows = table_rows(table, folds, result["settings"]["test"])
        words = "".join(f"<p>{html.escape(line)}</p>" for line in verdict_lines(table))
        sections.append(f"<h2>{html.escape(name)}</h2>{_html_table(header, rows)}{words}")
    best = result.get("best")
    if best:
        how = {"classical": "fitted on every label", "ensemble": "its members' fold models"}.get(
            best.get("kind"), "trained on every label")
        sections.append(f"<p>--fit-best: {html.escape(best['label'])} ({how}) in "
                        f"<code>{html.escape(best['folder'])}</code>{'; ' + html.escape(best['note']) if best.get('note') else ''}</p>")
    cells = "".join(f"<li><code>{html.escape(r['cell'])}</code>: validation {pct(r['val_accuracy'])}, test "
                    f"{pct(r['test_accuracy'])}, {r['seconds']:.1f} s</li>" for r in result["cells"])
    figures = "".join(f'<img src="{n}" alt="{n}">' for n in images)
    settings = html.escape(str({k: v for k, v in result["settings"].items() if k != "config"}))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mentor compare</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}} img{{max-width:100%}} h2{{font-size:16px}}</style>
</head><body><h1>Does the unlabeled data help? mentor compare</h1>
<p>{html.escape(format_tables(result).splitlines()[0])}</p>
<p>Intervals: 95% percentile bootstrap over the distinct held-out examples, each entry paired with supervised
training on the same examples. The choice uses validation only; test columns are reported beside it.</p>
{''.join(sections)}
{figures}
<h2>Settings</h2><p><code>{settings}</code></p>
<details><summary>{len(result['cells'])} cells (each an ordinary run folder under cells/)</summary><ul>{cells}</ul></details>
</body></html>
"""
