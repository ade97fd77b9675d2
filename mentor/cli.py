"""The ``mentor`` command: methods, presets, train, compare, eval, predict, export, report, pseudo-label, noisy-student,
demo."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import List, Optional

from .errors import ConfigError, MentorError
from .options import parse_options, parse_value  # noqa: F401  (parse_value: part of the command line's API)


NO_INPUT_CHECK = "do not check the run's inputs against its inputs.json (e.g. a run that has none)"


def add_train_arguments(p: argparse.ArgumentParser, one_method: bool = True) -> None:
    """Every flag defaults to "not given" so that a preset's value is overridden only by an
    explicit flag; the defaults shown are TrainConfig's. ``one_method`` False: no --method and
    --hp (mentor compare names its methods, with their options, in --methods)."""
    from .data.splits import NOISE_KINDS, PROTOCOLS
    from .train import TrainConfig
    from .train.config import OPTIMIZERS, PRECISIONS
    from .train.schedule import SCHEDULES

    d = TrainConfig()
    add = p.add_argument
    add("--preset", help="a recipe (see `mentor presets`); flags given here override it")
    if one_method:
        add("--method", help=f"see `mentor methods` (default {d.method})")
    add("--dataset", help="two_moons, digits, wine, breast_cancer, table, text, npz, cifar10, cifar100, svhn, mnist, "
        "fashion_mnist, image_folder")
    add("--data-path", help="the dataset's file or folder (CSV / Parquet table, npz file, CIFAR archive folder, ...)")
    add("--target", help="--dataset table: the column of class labels (empty cells: unlabeled rows)")
    add("--test-path", help="--dataset table or text: a file of labeled test rows (default: a seeded stratified 20%% "
        "of the labeled rows, saved in split.json); --dataset shards: the test split's shards (streamed)")
    add("--unlabeled-path", help="--dataset image_folder: a folder of class-less images (any depth) for the unlabeled "
        "pool; --dataset shards: an extra unlabeled pool of shards, streamed (e.g. 'pool-{000000..000099}.tar')")
    add("--num-labeled", type=int, help=f"labeled examples, N/C per class (default {d.num_labeled}; "
        "--dataset table, text, image_folder: every labeled example); 0 = every labeled training example")
    add("--split", choices=PROTOCOLS, help="balanced: seeded N/C per class (default); "
        "mpl: MPL appendix C.1, skip 5,000 then take N (official file order only)")
    add("--validation-size", type=int,
        help="training examples held out (class-balanced) to report val_accuracy; choose settings on it")
    add("--label-noise", type=float,
        help="fraction of the labeled examples whose label is corrupted (seeded; saved in split.json): "
             "to benchmark methods on noisy labels (DivideMix)")
    add("--noise-kind", choices=NOISE_KINDS, help="symmetric: redrawn uniformly over classes (default); "
        "asymmetric: class c becomes c + 1")
    add("--unlabeled-pool", choices=("all", "rest"),
        help="unlabeled data: every training example (papers' default) or those not labeled")
    add("--model", help=f"mlp, residual_mlp, small_cnn, cnn13, wrn28_2, wrn28_8, wrn, efficientnet_lite0, "
        f"timm:NAME (default {d.model}); pretrained weights: --model-hp pretrained=PATH|packaged|hub")
    add("--steps", type=int, help=f"training steps (default {d.steps})")
    add("--out", help="run folder: metrics.jsonl, summary.json, split.json, checkpoint.pt")
    add("--seed", type=int, help="seed of the run (default 0)")
    add("--split-seed", type=int, help="seed of the labeled split (default: --seed)")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add("--no-input-check", dest="check_inputs", action="store_false", help=NO_INPUT_CHECK)
    add("--batch-size", type=int, help=f"labeled examples per step (default {d.batch_size})")
    add("--unlabeled-batch-size", type=int, help=f"unlabeled examples per step (default {d.unlabeled_batch_size})")
    add("--optimizer", choices=OPTIMIZERS)
    add("--lr", type=float, help=f"learning rate (default {d.lr})")
    add("--momentum", type=float)
    add("--weight-decay", type=float)
    add("--decay-bn-and-bias", action="store_const", const=True, help="weight decay on BN and bias parameters too")
    add("--layer-decay", type=float, help="fine-tuning: the layer d below the classifier trains at lr * this^d "
        "(layer-wise decay, e.g. 0.65; default 1)")
    add("--backbone-lr-scale", type=float, help="fine-tuning: every layer but the classifier trains at lr * this "
        "(0 freezes the backbone; default 1)")
    add("--schedule", choices=SCHEDULES)
    add("--warmup-steps", type=int)
    add("--ema-decay", type=float, help="evaluate an EMA copy too (e.g. 0.999)")
    add("--eval-every", type=int, help=f"steps between evaluations/checkpoints (default {d.eval_every})")
    add("--median-of", type=int, help=f"report the median of the last N evaluations too (default {d.median_of})")
    add("--strong-noise", type=float,
        help="feature data: std of a Gaussian-noise strong view of unlabeled inputs (UDA, FixMatch, MPL's teacher)")
    add("--input-noise", type=float,
        help="std of Gaussian noise on labeled and weak views (Pi-model / Mean Teacher input noise)")
    add("--no-augment", dest="augment", action="store_const", const=False,
        help="images: no flip/translate on labeled and weak views")
    add("--translate", type=float, help=f"images: max shift as a fraction of the side (default {d.translate})")
    add("--randaugment-ops", type=int, help=f"images: RandAugment ops per image (default {d.randaugment_ops})")
    add("--randaugment-magnitude", type=float,
        help="images: every RandAugment op at this fraction of its maximum (default: random per image)")
    add("--cutout", type=float, help=f"images: Cutout side / image side (default {d.cutout})")
    add("--precision", choices=PRECISIONS, help="auto: bf16 autocast on CUDA, fp32 on CPU")
    add("--channels-last", dest="channels_last", action="store_const", const=True, help="default: on for CUDA")
    add("--no-channels-last", dest="channels_last", action="store_const", const=False)
    add("--compile", action="store_const", const=True, help="torch.compile the models")
    add("--capture", action="store_const", const=True,
        help="compile the whole step (loss, backward, optimizer) into static graphs, CUDA graphs on a GPU; "
             "for methods whose step has no host-side logic (see docs/cli.md)")
    add("--tensorboard", action="store_const", const=True, help="also log to OUT/tensorboard")
    add("--sync-bn", action="store_const", const=True,
        help="under torchrun: batch-norm statistics over all processes (SyncBatchNorm; CUDA only)")
    add("--device", help="auto, cpu, cuda, cuda:1, ...")
    if one_method:
        add("--hp", nargs="*", metavar="KEY=VALUE", help="method hyper-parameters, e.g. feedback=cosine")
    add("--model-hp", nargs="*", metavar="KEY=VALUE", help="model options, e.g. hidden=8,8")
    add("--data-hp", nargs="*", metavar="KEY=VALUE", help="dataset options, e.g. noise=0.1")
    add("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")
    for action in p._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS


def config_from_args(args) -> "TrainConfig":
    """TrainConfig defaults <- the preset's settings <- the flags given."""
    from .presets import preset_settings
    from .train import TrainConfig

    given = dict(vars(args))
    given.pop("func", None)
    given.pop("command", None)
    given.pop("debug", None)
    given.pop("resume", None)
    given.pop("check_inputs", None)
    settings = preset_settings(given.pop("preset")) if "preset" in given else {}
    for flag, key in (("hp", "method_options"), ("model_hp", "model_options"), ("data_hp", "dataset_options")):
        if flag in given:
            options = parse_options(given.pop(flag), "--" + flag.replace("_", "-"))
            settings[key] = {**settings.get(key, {}), **options}
    for flag in ("target", "test_path", "unlabeled_path"):  # dataset options (table, shards), as flags
        if flag in given:
            settings["dataset_options"] = {**settings.get("dataset_options", {}), flag: given.pop(flag)}
    settings.update(given)
    if settings.get("dataset") in ("table", "text", "image_folder") and "num_labeled" not in settings:
        settings["num_labeled"] = 0  # a file's or folder's labels are the user's own: train on all of them
    return TrainConfig(**settings)


def cmd_methods(args) -> int:
    from .registry import METHODS

    for name in METHODS.names():
        doc = (sys.modules[METHODS.get(name).__module__].__doc__ or "").strip()
        summary = " ".join(doc.split("\n\n")[0].split())  # the docstring's first paragraph, on one line
        print(f"{name:22s} {summary}")
    return 0


def cmd_presets(args) -> int:
    from .presets import PRESETS

    for name, preset in sorted(PRESETS.items()):
        print(f"{name:18s} {preset.source}")
    return 0


def cmd_train(args) -> int:
    from .train import distributed, train

    config = config_from_args(args)
    summary, is_main = distributed.run(lambda: train(config, resume=getattr(args, "resume", False),
                                                     check_inputs=getattr(args, "check_inputs", True)))
    if not is_main:
        return 0
    keys = ("method", "dataset", "final_test_accuracy", "final_ema_test_accuracy", "median_last_test_accuracy",
            "median_last_ema_test_accuracy", "steps", "wall_seconds", "seconds_per_step")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    return 0


def cmd_eval(args) -> int:
    from .train import load_run

    trainer = load_run(args.run_dir, device=args.device, check_inputs=args.check_inputs)
    print(json.dumps({"step": trainer.step, **trainer.evaluate()}, indent=2))
    return 0


def cmd_predict(args) -> int:
    from .inference import load_model, read_rows, write_predictions

    predictor = load_model(args.run_dir, model=args.model, device=args.device)
    x, keys = read_rows(args.data, predictor.spec)
    n = write_predictions(args.out, predictor, x, keys)
    print(json.dumps({"rows": n, "model": predictor.which, "classes": predictor.classes_.tolist(), "out": args.out},
                     indent=2))
    return 0


def cmd_export(args) -> int:
    from .inference import export_model

    print(json.dumps(export_model(args.run_dir, args.out, model=args.model), indent=2))
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    print(json.dumps(write_report(args.run_dirs, args.out), indent=2))
    return 0


def cmd_pseudo_label(args) -> int:
    from .pipelines.noisy_student import pseudo_label_run

    from .train import distributed

    manifest, is_main = distributed.run(lambda: pseudo_label_run(
        args.run_dir, args.out, data=args.data, batch_size=args.batch_size, shard_size=args.shard_size,
        device=args.device, progress=not args.no_progress, check_inputs=args.check_inputs))
    if is_main:
        print(json.dumps(manifest, indent=2))
    return 0


def cmd_shards(args) -> int:
    from .data.shards import verify

    if args.verify:
        bad = verify(args.verify, progress=not args.no_progress)
        for path in bad:
            print(f"checksum mismatch: {path}")
        print("every shard matches its manifest" if not bad else f"{len(bad)} shard(s) differ from their manifest")
        return 1 if bad else 0
    if not args.out:
        raise ConfigError("mentor shards needs --out DIR (or --verify PATTERN)")
    from .data.shards.inputs import shard_source

    written = shard_source(args.out, name=args.name, dataset=args.dataset, data_path=args.data_path,
                           source=args.source, shard_size=args.shard_size, encoding=args.encoding,
                           progress=not args.no_progress)
    for set_name, manifest in written.items():
        last = len(manifest["shardlist"]) - 1
        size = manifest["image_size"] or "mixed sizes (train with --data-hp size=H,W)"
        print(f"{set_name}: {manifest['num_samples']} images ({manifest['num_labeled']} labeled) in {last + 1} "
              f"shard(s), {size}: '{os.path.join(args.out, set_name)}-{{000000..{last:06d}}}.tar'")
    return 0


def cmd_noisy_student(args) -> int:
    from .pipelines.noisy_student import run_noisy_student

    rounds, teacher, width, cutout = args.rounds, getattr(args, "teacher", None), args.student_width, args.student_cutout
    student_options = parse_options(getattr(args, "student_model_hp", None), "--student-model-hp")
    for name in ("rounds", "teacher", "student_model_hp", "student_width", "student_cutout"):
        vars(args).pop(name, None)
    config = config_from_args(args)
    if config.out is None:
        raise ConfigError("noisy-student needs --out, the folder of the pipeline's runs")
    table = run_noisy_student(config, rounds, config.out, teacher=teacher,
                              student_model_options=student_options, student_width=width, student_cutout=cutout,
                              progress=config.progress)
    print(json.dumps(table, indent=2))
    return 0


COMPARE_FLAGS = ("methods", "seeds", "folds", "jobs", "baselines", "unlabeled_fraction", "class_mismatch",
                 "labeled_classes", "fit_best", "choice_rule", "deliver")


def cmd_compare(args) -> int:
    from .compare import compare, format_tables

    own = {name: vars(args).pop(name, None) for name in COMPARE_FLAGS}
    resume = getattr(args, "resume", False)
    config = config_from_args(args)
    if config.out is None:
        raise ConfigError("mentor compare needs --out, the folder of its cells, compare.json and report.html")
    baselines = own["baselines"]
    if baselines is not None and [b.lower() for b in baselines] == ["none"]:
        baselines = []
    seeds = own["seeds"] or ([config.seed] if "seed" in vars(args) else None)
    result = compare(config, methods=own["methods"], seeds=seeds, folds=own["folds"], out=config.out,
                     jobs=own["jobs"], resume=resume, baselines=baselines,
                     unlabeled_fractions=own["unlabeled_fraction"], class_mismatch=own["class_mismatch"],
                     labeled_classes=own["labeled_classes"], fit_best=own["fit_best"], progress=config.progress,
                     rule=own["choice_rule"], deliver=own["deliver"], log=say)
    print(format_tables(result))
    if result.get("best"):
        print("\n" + best_line(result["best"]))
    print(f"\nwrote {os.path.join(config.out, 'compare.json')} and {os.path.join(config.out, 'report.html')}")
    return 0


def say(text: str) -> None:
    """The plan and notes of a long command, on stderr (with or without --no-progress)."""
    print(text, file=sys.stderr, flush=True)


def best_line(best: dict) -> str:
    """What --fit-best delivered, in one line."""
    how = {"network": "trained on every label", "classical": "fitted on every label",
           "ensemble": "every member refitted on every label, at its validated weight"
           if best.get("deliver") == "refit" else "the fold models, as validated"}[best.get("kind", "network")]
    return (f"--fit-best: {best['label']} ({how}): {best['folder']} (mentor predict / mentor export / mentor report "
            "take it)" + (f"; {best['note']}" if best.get("note") else ""))


def cmd_demo(args) -> int:
    if args.which == "two-moons":
        from .experiments.two_moons import run_demo

        run_demo(seeds=args.seeds, out=args.out, workers=args.workers, progress=not args.no_progress)
        return 0
    from .compare import format_tables
    from .experiments.compare_demo import run_compare_demo

    result = run_compare_demo(out=args.out, jobs=args.workers, progress=not args.no_progress, log=say)
    print(format_tables(result))
    print(f"\nwrote {os.path.join(args.out, 'compare.json')} and {os.path.join(args.out, 'report.html')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .compare.stats import CHOICE_RULES
    from .inference import MODEL_CHOICES

    parser = argparse.ArgumentParser(prog="mentor", description="Semi-supervised learning with teacher-student methods.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods", help="list the registered methods").set_defaults(func=cmd_methods)
    sub.add_parser("presets", help="list the recipes for --preset").set_defaults(func=cmd_presets)
    p = sub.add_parser("train", help="train one method on one dataset")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("eval", help="re-evaluate a run folder's checkpoint on its test split")
    p.add_argument("run_dir")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-input-check", dest="check_inputs", action="store_false", help=NO_INPUT_CHECK)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("predict", help="a run's predictions on new inputs, as CSV (class and probabilities)")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True, nargs="+", help="a table (.csv/.parquet: raw feature columns), .npy or "
                   ".npz array, or a dataset path of the run's kind (its test split); for a run on images, image "
                   "files and folders of them (any depth; each row keyed by its file)")
    p.add_argument("--out", required=True, help="the CSV to write: row, prediction, p_<class> ...")
    p.add_argument("--model", choices=MODEL_CHOICES, default="auto",
                   help="student (the method's evaluated model), ema, teacher; auto: the EMA if the run kept one")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("export", help="a self-contained inference file: torch.export (.pt2) or ONNX (.onnx)")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="model.pt2 or model.onnx")
    p.add_argument("--model", choices=MODEL_CHOICES, default="auto")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("report", help="an HTML page and PNGs of runs' curves (accuracy, losses, masks, learning "
                       "rates) overlaid, and each run's confusion matrix")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True, help="report.html; the PNGs are written beside it")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("pseudo-label", help="a finished run's predictions on an unlabeled pool, in shards on disk")
    p.add_argument("run_dir", help="the teacher: a run folder (its evaluated model labels the pool)")
    p.add_argument("--out", required=True, help="folder for manifest.json and shard-NNNNN.npz")
    p.add_argument("--data", help="a .npy file of examples stored like the run's dataset "
                   "(default: the run's own unlabeled pool)")
    p.add_argument("--batch-size", type=int, default=1024, help="examples per forward pass")
    p.add_argument("--shard-size", type=int, default=65536, help="examples per shard file")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-input-check", dest="check_inputs", action="store_false", help=NO_INPUT_CHECK)
    p.set_defaults(func=cmd_pseudo_label)
    p = sub.add_parser("shards", help="write WebDataset tar shards (and a manifest: counts per class, image sizes, "
                       "checksums) from a built-in dataset, an image folder, a .npz/.npy array or a CSV; resumable")
    p.add_argument("--out", help="folder of the shards and their manifests (NAME.json)")
    p.add_argument("--dataset", help="a built-in image dataset (cifar10, fashion_mnist, ...): writes NAME-train and "
                   "NAME-test (and NAME-unlabeled if it has extra unlabeled images)")
    p.add_argument("--data-path", help="the built-in dataset's file or folder, as for mentor train")
    p.add_argument("--from", dest="source", help="an image folder (root/<class>/*, root/<split>/<class>/*, or loose "
                   "images: unlabeled), a .npz (x_train, y_train, x_test, y_test[, x_unlabeled]), a .npy of "
                   "unlabeled images, or a .csv with columns path[,label]")
    p.add_argument("--name", help="the shard set's name (default: the dataset's or the source's)")
    p.add_argument("--shard-size", type=int, default=10000, help="images per shard (default 10000)")
    p.add_argument("--encoding", choices=["png", "jpg"], default="png",
                   help="how array images are stored (png: lossless, default); image files are stored as they are")
    p.add_argument("--verify", metavar="PATTERN", help="check the shards of PATTERN against their manifest's sha256")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_shards)
    p = sub.add_parser("noisy-student", help="Noisy Student rounds: teacher -> pseudo labels -> noised student -> ...")
    add_train_arguments(p)
    p.add_argument("--rounds", type=int, default=2, help="student rounds after the teacher (default 2)")
    p.add_argument("--teacher", help="start from this finished run folder instead of training a teacher")
    p.add_argument("--student-width", type=float, default=4.0,
                   help="students are this many times wider than the teacher's model (default 4: mlp 64-64 -> "
                        "256-256, wrn28_2 -> WRN-28-8; 1 = an equal student)")
    p.add_argument("--student-cutout", type=float, default=0.0,
                   help="Cutout in the students' strong view (default 0: RandAugment alone, the paper's noise)")
    p.add_argument("--student-model-hp", nargs="*", metavar="KEY=VALUE",
                   help="further model options of every student, e.g. dropout=0.3")
    p.set_defaults(func=cmd_noisy_student)
    p = sub.add_parser("compare", help="does unlabeled data help, and which method? every method next to supervised "
                       "training and classical baselines, on folds of the labels, with intervals and a verdict")
    add_train_arguments(p, one_method=False)
    p.add_argument("--methods", nargs="+", metavar="NAME[:KEY=VALUE...]",
                   help="methods (with options, e.g. meta_pseudo_labels:feedback=none) and scikit-learn baselines "
                        "(logistic_regression, gradient_boosting, label_spreading, self_training); supervised is "
                        "always added. Default: supervised fixmatch uda mean_teacher mixmatch meta_pseudo_labels simmatch, "
                        "plus the baselines on feature data")
    p.add_argument("--baselines", nargs="+", metavar="NAME",
                   help="scikit-learn baselines (default on feature data: logistic_regression gradient_boosting "
                        "label_spreading; none on images); 'none' for none")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds: each draws its labels (unless --split-seed pins "
                   "them), its folds and its training (default: --seed, 0)")
    p.add_argument("--folds", type=int, default=5, help="stratified folds of the labels per seed (default 5): each "
                   "trains on the others and is scored on its held-out labels; 0: train on every label, test split "
                   "only (a benchmark: nothing is chosen)")
    p.add_argument("--jobs", type=int, default=1, help="cells trained in parallel worker processes, the cores' "
                   "threads split between them (default 1)")
    p.add_argument("--unlabeled-fraction", nargs="+", type=float, metavar="F",
                   help="study: keep a seeded fraction F of the unlabeled pool (e.g. 0.1 0.3 1)")
    p.add_argument("--class-mismatch", nargs="+", type=float, metavar="R",
                   help="study: label only --labeled-classes; a fraction R of a fixed-size unlabeled pool comes "
                        "from the other classes (e.g. 0 0.25 0.5 0.75 1)")
    p.add_argument("--labeled-classes", nargs="+", type=int, metavar="C",
                   help="with --class-mismatch: the labeled classes (default: the first 60%% of the classes)")
    p.add_argument("--fit-best", action="store_true",
                   help="deliver the choice into OUT/best: a network trained on every label, a classical baseline "
                        "fitted on every label, or the ensemble of fold models (mentor predict / export / report "
                        "take it)")
    p.add_argument("--deliver", choices=("refit", "bag"),
                   help="with --fit-best: refit (the choice fitted on every label; an ensemble: each member refitted, "
                        "at its validated weights) or bag (its fold models as validated, averaged); default: "
                        "what measured best for ensembles and for single entries (see docs/compare.md)")
    p.add_argument("--choice-rule", choices=CHOICE_RULES,
                   help="how the choice is made on validation: validation (the best single entry), significant "
                        "(the best whose interval over supervised excludes zero, else the best of supervised and "
                        "the baselines), ensemble, validation+ensemble (default: the rule with the lowest measured "
                        "regret, see docs/compare.md)")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("demo", help="the main demo: mentor compare on built-in data (see README.md); "
                       "'mentor demo two-moons': the MPL TwoMoon experiment (paper section 3.1)")
    p.add_argument("which", nargs="?", choices=("compare", "two-moons"), default="compare")
    p.add_argument("--seeds", type=int, default=10, help="two-moons: datasets / runs per method")
    p.add_argument("--out", default="demo_out", help="folder of the demo's files")
    p.add_argument("--workers", type=int, default=2, help="processes running cells (seeds) in parallel")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """The library's own warnings (what a loader left out, images converted) as one plain line."""
    if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(os.path.dirname(__file__) + os.sep):
        return f"mentor: note: {message}\n"
    return _default_format(message, category, filename, lineno, line)


_default_format = warnings.formatwarning


def _own_message(exc: Exception) -> str:
    """The error's own message: one raised in a DataLoader worker comes back wrapped in the
    worker's traceback ("Caught DataError in DataLoader worker process 0. Original Traceback
    ..."), whose last line is the message."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]  # "mentor.errors.DataError: ..."
        name, sep, message = last.partition(": ")
        return message if sep and " " not in name else last
    return text


FILE_OUTPUTS = ("predict", "export", "report")  # the commands whose --out is a file; the others' is a folder


def main(argv: Optional[List[str]] = None) -> int:
    """The command line's one error boundary: a user error (bad input, flag, file, device, a path
    that cannot be written) is one ``mentor: error:`` line and exit code 2; ``--debug`` shows its
    traceback. Anything else is a defect and keeps its traceback."""
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _warning_line
    try:
        if getattr(args, "out", None):
            from .files import check_output

            check_output(args.out, folder=args.command not in FILE_OUTPUTS)
        return args.func(args)
    except (MentorError, OSError) as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError):  # the file system's refusal: a path, a permission, a full disk
            where = f" {exc.filename}" if exc.filename else ""
            print(f"mentor: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        else:
            print(f"mentor: error: {_own_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mentor: interrupted; a run with --out can be continued with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, after the ranks' final barrier and destroy_process_group: leave without the
        # C++ runtime's exit-time destructors, which now and then abort a rank in gloo's teardown
        # ("terminate called without an active exception") after all its work is on disk.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
