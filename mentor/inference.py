"""Use a trained run: predict on raw inputs, and export a self-contained inference artifact.

    model = mentor.load_model("runs/fixmatch")           # the run's evaluated model (EMA if it has one)
    model.predict(x)                                       # class labels, in the dataset's own names
    model.predict_proba(x)                                 # (n, C) probabilities, columns = model.classes_
    mentor.export_model("runs/fixmatch", "model.pt2")      # torch.export program, or .onnx

The run folder's inference.json (written at the start of every run) holds what the model
needs besides its weights: input shape, class names and the evaluation transform (image
channel statistics, a table's feature columns and scaling). Inputs are raw: a table's
unscaled feature rows, uint8 images (n, C, H, W) or floats in [0, 1]. For runs made before
inference.json existed, the run's dataset is loaded once to rebuild it.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, ConfigError, DataError
from .options import resolve_device
from .train import CHECKPOINT, INFERENCE
from .train.run_folder import RunFolder, check_run_id


MODEL_CHOICES = ("auto", "student", "ema", "teacher")


class Preprocess(nn.Module):
    """Raw input -> model input: a table's (x - mean) / std, or an image's x / 255 (uint8) then
    per-channel (x - mean) / std: the run's evaluation transform, as tensors (exportable)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.image = spec["kind"] == "image"
        if self.image:
            mean, std = spec["image_mean"], spec["image_std"]
            shape = (1, -1, 1, 1)
        else:
            scaling = spec.get("feature_scaling") or {}
            width = int(np.prod(spec["input_shape"]))
            mean, std = scaling.get("mean", [0.0] * width), scaling.get("std", [1.0] * width)
            shape = (1, *spec["input_shape"])
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image and x.dtype == torch.uint8:
            x = x.float() / 255.0
        return (x.float() - self.mean) / self.std


def embedder(spec: dict):
    """For a model trained on cached embeddings (mentor.embedding), the pretrained backbone that
    embeds new images the same way; None otherwise."""
    embedding = spec.get("embedding")
    if not embedding:
        return None
    from .embedding import Embedder

    return Embedder(embedding["model"], spec["input_shape"], embedding["pretrained"], embedding["resolution"])


class InferenceModel(nn.Module):
    """Preprocess, then the trained network, then softmax: raw input -> class probabilities."""

    def __init__(self, net: nn.Module, spec: dict):
        super().__init__()
        self.preprocess, self.net = Preprocess(spec), net
        self.embed = embedder(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        if self.embed is not None:
            x = self.embed(x)
        return F.softmax(self.net(x).float(), dim=-1)


def raw_inputs(x, spec: dict, run_dir: str) -> torch.Tensor:
    """Raw inputs as a CPU tensor (uint8 kept, other numbers as float32), checked against the
    shape the model of ``run_dir`` takes and for non-finite values."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    else:
        a = np.asarray(x)
        if a.dtype == object or not np.issubdtype(a.dtype, np.number):
            raise DataError(f"inputs must be numeric, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a if a.dtype == np.uint8 else a.astype(np.float32)))
    shape = tuple(spec["input_shape"])
    if tuple(t.shape[1:]) != shape:
        columns = spec.get("feature_columns")
        detail = f" (columns {', '.join(columns)})" if columns else ""
        raise DataError(f"the model of {run_dir} takes inputs of shape (n, {', '.join(map(str, shape))})"
                        f"{detail}; got shape {tuple(t.shape)}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise DataError("inputs hold NaN or infinite values")
    if spec["kind"] == "image" and t.is_floating_point() and len(t) and float(t.max()) > 1.5:
        # Legal but likely a mistake: float images are taken as [0, 1], uint8 ones as 0-255.
        warnings.warn(f"float images with values up to {float(t.max()):g}: the model of {run_dir} takes float "
                      "images in [0, 1] (uint8 images in 0-255); divide by 255 or pass uint8 if these are 0-255 "
                      "pixels", UserWarning, stacklevel=3)
    return t


def class_labels(spec: dict) -> np.ndarray:
    names = spec.get("class_names")
    return np.array(names if names is not None else list(range(spec["num_classes"])))


class Predictor:
    """A trained run's model with its evaluation transform. ``classes_``: the label of each
    probability column (the dataset's class names, or 0..C-1)."""

    def __init__(self, net: nn.Module, spec: dict, which: str, run_dir: str, device: torch.device):
        self.spec, self.which, self.run_dir, self.device = spec, which, run_dir, device
        self.module = InferenceModel(net, spec).to(device).eval()
        self.classes_ = class_labels(spec)

    @property
    def input_shape(self):
        return tuple(self.spec["input_shape"])

    @torch.no_grad()
    def predict_proba(self, x, batch_size: int = 1024) -> np.ndarray:
        t = raw_inputs(x, self.spec, self.run_dir)
        parts = [self.module(t[i:i + batch_size].to(self.device)).cpu() for i in range(0, len(t), batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(self.classes_)), np.float32)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        return self.classes_[self.predict_proba(x, batch_size).argmax(axis=1)]

    def __repr__(self) -> str:
        return f"Predictor({self.run_dir!r}, model={self.which!r}, classes={self.classes_.tolist()})"


class ClassicalPredictor:
    """A classical (scikit-learn) model delivered by `mentor compare --fit-best` (or a baseline
    cell's folder): the same raw inputs as a network of the same data, the same ``classes_``."""

    which = "classical"

    def __init__(self, estimator, spec: dict, run_dir: str):
        self.estimator, self.spec, self.run_dir = estimator, spec, run_dir
        self.classes_ = class_labels(spec)
        # raw inputs -> the rows it was fitted on: a table's scaling (Preprocess), images through the
        # backbone to their embeddings as the network route does; plain images are pixels / 255
        self.front = None
        if spec.get("embedding"):
            self.front = nn.Sequential(Preprocess(spec), embedder(spec)).eval()
        elif spec["kind"] == "features":
            self.front = Preprocess(spec)

    @property
    def input_shape(self):
        return tuple(self.spec["input_shape"])

    @torch.no_grad()
    def features(self, x) -> np.ndarray:
        """Raw inputs -> the rows the estimator was fitted on (mentor.classical.as_features)."""
        from .classical import as_features

        t = raw_inputs(x, self.spec, self.run_dir)
        if self.front is not None and len(t):
            t = torch.cat([self.front(t[i:i + 256]) for i in range(0, len(t), 256)])
        return as_features(t.numpy())

    def predict_proba(self, x, batch_size: int = 1024) -> np.ndarray:
        from .classical import probabilities

        return probabilities(self.estimator, self.features(x), len(self.classes_)).astype(np.float32)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]

    def __repr__(self) -> str:
        return f"ClassicalPredictor({self.run_dir!r}, {type(self.estimator).__name__}, classes={self.classes_.tolist()})"


class EnsemblePredictor:
    """The weighted average of member models' probabilities (mentor compare's ensemble entry)."""

    which = "ensemble"

    def __init__(self, members: list, weights: list, spec: dict, run_dir: str):
        self.members, self.weights, self.spec, self.run_dir = members, weights, spec, run_dir
        self.classes_ = class_labels(spec)

    @property
    def input_shape(self):
        return tuple(self.spec["input_shape"])

    def predict_proba(self, x, batch_size: int = 1024) -> np.ndarray:
        raw_inputs(x, self.spec, self.run_dir)  # one clear error before any member runs
        return sum(w * m.predict_proba(x, batch_size) for m, w in zip(self.members, self.weights)).astype(np.float32)

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        return self.classes_[self.predict_proba(x, batch_size).argmax(axis=1)]

    def __repr__(self) -> str:
        return f"EnsemblePredictor({self.run_dir!r}, {len(self.members)} members, classes={self.classes_.tolist()})"


def _read_json(path: str) -> dict:
    from .files import read_json

    return read_json(path)


def _choose(models: Dict[str, nn.Module], which: str, run_dir: str):
    if which == "auto":
        which = "ema" if "ema" in models else "student"
    if which not in models:
        raise ConfigError(f"{run_dir} has no {which!r} model; it has: {', '.join(sorted(models))}")
    return models[which], which


def load_model(run_dir: str, model: str = "auto", device: str = "cpu"):
    """The run's model ready for raw inputs: a Predictor for a network run, a ClassicalPredictor
    or an EnsemblePredictor for what `mentor compare --fit-best` delivers (or a baseline cell).
    ``model`` (network runs): "student" (the method's evaluated model), "ema" (its moving
    average, when the run kept one), "teacher" (methods with one), or "auto" (the EMA if there is
    one, else the student)."""
    from .methods import create_method
    from .models import ModelFactory
    from .train.checkpoint import load_checkpoint
    from .train.config import TrainConfig
    from .train.ema import SyncFreeEMA

    from .classical import ENSEMBLE_FILE, MODEL_FILE, check_ensemble, load_model_file

    path = os.path.join(run_dir, CHECKPOINT)
    device = resolve_device(device)  # before anything is read: a device this machine lacks is said as such
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"no run folder {run_dir}")
    delivered = [f for f in (ENSEMBLE_FILE, MODEL_FILE) if os.path.exists(os.path.join(run_dir, f))]
    if delivered and model != "auto":
        kind = "an ensemble" if delivered[0] == ENSEMBLE_FILE else "a classical model"
        raise ConfigError(f"{run_dir} holds one model ({kind}); --model {model} is for network runs")
    if delivered and not os.path.exists(os.path.join(run_dir, INFERENCE)):
        raise CheckpointError(f"{run_dir} lacks {INFERENCE}: an incomplete model folder")
    if delivered == [MODEL_FILE]:
        return ClassicalPredictor(load_model_file(os.path.join(run_dir, MODEL_FILE)),
                                  _read_json(os.path.join(run_dir, INFERENCE)), run_dir)
    if delivered:
        listing = _read_json(os.path.join(run_dir, ENSEMBLE_FILE))
        weights = check_ensemble(listing, run_dir)
        members = [load_model(os.path.join(run_dir, m["folder"]), device=device) for m in listing["members"]]
        return EnsemblePredictor(members, weights, _read_json(os.path.join(run_dir, INFERENCE)), run_dir)
    if not os.path.exists(path):
        raise CheckpointError(f"{run_dir} holds no {CHECKPOINT} (nor a classical model or an ensemble): is it a "
                              "finished mentor run?")
    state = load_checkpoint(path, map_location="cpu")
    check_run_id(state, RunFolder(run_dir).recorded_run_id(), run_dir)
    config = TrainConfig.from_dict(state["config"])
    spec_path = os.path.join(run_dir, INFERENCE)
    if os.path.exists(spec_path):
        spec = _read_json(spec_path)
    else:  # runs from before inference.json: rebuild it from the run's dataset
        from .train import load_run

        spec = load_run(run_dir, device="cpu", check_inputs=False).inference_spec()  # older than inputs.json too
    net_input = [spec["embedding"]["dim"]] if spec.get("embedding") else spec["input_shape"]
    factory = ModelFactory(config.model, net_input, spec["num_classes"], load_weights=False,
                           **config.model_options)
    method = create_method(config.method, factory, spec["num_classes"], seed=config.seed, **config.method_options)
    try:
        method.models.load_state_dict(state["method"]["models"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not match its own config ({exc})") from None
    models = {"student": method.eval_model(), **method.eval_models()}
    if state.get("ema") is not None:
        ema = SyncFreeEMA(method.eval_model(), config.ema_decay or 0.999)
        ema.load_state_dict(state["ema"])
        models["ema"] = ema.module
    net, which = _choose(models, model, run_dir)
    return Predictor(net, spec, which, run_dir, device)


def export_model(run_dir: str, out: str, model: str = "auto") -> dict:
    """Write ``out`` (.pt2: a torch.export program with the class names inside; .onnx: ONNX) that
    maps raw inputs to probabilities without mentor. A classical model or an ensemble exports to
    .onnx only (or is refused with the reason). Returns what was written."""
    from .files import write_atomically

    if not out.endswith((".pt2", ".onnx")):
        raise ConfigError(f"export to {out!r}: the name must end in .pt2 (torch.export) or .onnx")
    predictor = load_model(run_dir, model)
    if out.endswith(".onnx"):
        try:
            import onnx  # noqa: F401  (torch's exporter and the classical converter write through it)
        except ImportError:
            raise ConfigError("exporting .onnx needs the onnx and onnxscript packages (pip install onnx onnxscript); "
                              ".pt2 needs nothing more") from None
    meta = {"run": os.path.abspath(run_dir), "model": predictor.which, "classes": predictor.classes_.tolist(),
            "input_shape": list(predictor.input_shape), "feature_columns": predictor.spec.get("feature_columns"),
            "output": "probabilities (n, C)"}
    if isinstance(predictor, Predictor):
        data, dtype = _network_export(predictor, out)
        meta["input_dtype"] = dtype
        if out.endswith(".pt2"):
            write_atomically(out, lambda f: data(f, json.dumps(meta)))
            return {"out": out, **meta}
    else:
        if out.endswith(".pt2"):
            raise ConfigError(f"{run_dir} holds a{'n ensemble' if predictor.which == 'ensemble' else ' classical model'}"
                              "; .pt2 is torch.export's format for networks: export it to .onnx")
        proto, shape, dtype = _onnx_proto(predictor)
        meta.update(input_shape=shape, input_dtype=dtype)
        data = proto.SerializeToString()
    write_atomically(out, lambda f: f.write(data))
    write_atomically(out + ".json", lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return {"out": out, **meta}


def _network_export(predictor: Predictor, out: str):
    """(.pt2: a writer f, meta -> None; .onnx: the bytes), and the input dtype's name."""
    module = predictor.module.cpu().eval()
    image = predictor.spec["kind"] == "image"
    example = torch.zeros((2, *predictor.input_shape), dtype=torch.uint8 if image else torch.float32)
    batch = torch.export.Dim("batch", min=1)
    dtype = str(example.dtype).replace("torch.", "")
    if out.endswith(".pt2"):
        program = torch.export.export(module, (example,), dynamic_shapes={"x": {0: batch}})
        return (lambda f, meta: torch.export.save(program, f, extra_files={"mentor.json": meta})), dtype
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "model.onnx")
        torch.onnx.export(module, (example,), staged, input_names=["x"], output_names=["probabilities"],
                          dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=False)
        with open(staged, "rb") as src:
            return src.read(), dtype


def _onnx_proto(predictor):
    """(ONNX model of a classical or ensemble predictor: input "x", output "probabilities";
    the input's shape after the batch; its dtype). Raises ConfigError with the reason where
    there is no ONNX form."""
    import onnx

    from .classical import onnx_model

    if isinstance(predictor, Predictor):
        data, dtype = _network_export(predictor, ".onnx")
        return onnx.load_from_string(data), list(predictor.input_shape), dtype
    if isinstance(predictor, ClassicalPredictor):
        spec = predictor.spec
        if spec.get("embedding"):
            raise ConfigError(f"{predictor.run_dir}: a classical model on a pretrained backbone's embeddings has no "
                              "ONNX form here (the backbone would have to be inside); mentor predict serves it")
        width = int(np.prod(spec["input_shape"]))
        shift, scale = np.zeros(width, np.float32), np.ones(width, np.float32)
        if spec["kind"] == "image":  # raw pixels 0-255, flattened: the estimator saw them in [0, 1]
            scale[:] = 255.0
        elif spec.get("feature_scaling"):
            shift = np.asarray(spec["feature_scaling"]["mean"], np.float32).reshape(-1)
            scale = np.asarray(spec["feature_scaling"]["std"], np.float32).reshape(-1)
        proto = onnx_model(predictor.estimator, shift, scale, len(predictor.classes_))
        return proto, [width], "float32"
    members = [_onnx_proto(m) for m in predictor.members]
    if len({(tuple(shape), dtype) for _, shape, dtype in members}) > 1:
        raise ConfigError(f"{predictor.run_dir}: its members take different inputs "
                          f"({', '.join(sorted({f'{d} {tuple(s)}' for _, s, d in members}))}): no single ONNX graph; "
                          "mentor predict serves it")
    return _weighted_sum(predictor, [p for p, _, _ in members]), members[0][1], members[0][2]


def _weighted_sum(predictor, protos: list):
    """One ONNX graph: every member's graph on the shared input "x", their probabilities weighted
    and summed (onnx.compose gives each member's names a prefix of its own)."""
    import onnx
    from onnx import compose, helper, numpy_helper

    nodes, initializers, functions, outputs = [], [], [], []
    opsets: Dict[str, int] = {}
    first_input = protos[0].graph.input[0]
    for i, proto in enumerate(protos):
        prefixed = compose.add_prefix(proto, f"m{i}_")
        graph = prefixed.graph
        nodes.append(helper.make_node("Identity", ["x"], [graph.input[0].name]))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        functions.extend(prefixed.functions)
        weight = f"m{i}_weight"
        initializers.append(numpy_helper.from_array(np.array(predictor.weights[i], np.float32), weight))
        nodes.append(helper.make_node("Mul", [graph.output[0].name, weight], [f"m{i}_weighted"]))
        outputs.append(f"m{i}_weighted")
        for opset in prefixed.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    nodes.append(helper.make_node("Sum", outputs, ["probabilities"]))
    x = helper.make_tensor_value_info("x", first_input.type.tensor_type.elem_type,
                                      ["batch", *[d.dim_value for d in first_input.type.tensor_type.shape.dim[1:]]])
    y = helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", len(predictor.classes_)])
    graph = helper.make_graph(nodes, "mentor_ensemble", [x], [y], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              functions=functions, producer_name="mentor")
    model.ir_version = max(p.ir_version for p in protos)
    onnx.checker.check_model(model)
    return model


def read_rows(paths, spec: dict, progress: bool = True) -> tuple:
    """(raw inputs, row keys) for `mentor predict`. For a run on images: image files and folders of
    them (searched at any depth; the keys are the files' paths), each decoded to the shape the
    model takes. Otherwise (and for a path holding no image file) one path, as read_inputs reads
    it, keyed by row number."""
    from .data.sources.folders import IMAGE_SUFFIXES, decode_images, image_files

    paths = [paths] if isinstance(paths, str) else list(paths)
    if spec["kind"] == "image" and any(os.path.isdir(p) or not p.endswith(DATA_FILES) for p in paths):
        try:
            files = image_files(paths)
        except DataError:
            if len(paths) > 1:
                raise
            files = []
        if files:
            channels, height, width = spec["input_shape"]
            return decode_images(files, channels, (height, width), progress), files
        if spec["dataset"] == "image_folder" and os.path.isdir(paths[0]):  # not a dataset path of another kind
            raise DataError(f"{paths[0]} holds no image file to predict ({', '.join(IMAGE_SUFFIXES)}, at any depth)")
    if len(paths) != 1:
        raise DataError(f"predict takes one input file for this run (a {spec['kind']} model); got {len(paths)}: "
                        "several inputs are for image runs (image files and folders)")
    x = read_inputs(paths[0], spec)
    return x, list(range(len(x)))


DATA_FILES = (".csv", ".tsv", ".parquet", ".npy", ".npz")


def read_inputs(path: str, spec: dict) -> np.ndarray:
    """Raw inputs for `mentor predict`: a table (.csv, .tsv, .parquet; a run trained on a table takes
    its feature columns by name, any other column such as the target is ignored), for a run on
    text a file of sentences (one a line, or label<TAB>sentence), a .npy array,
    a .npz archive (its ``x``, else ``x_test``), or the path of the run's own dataset kind (a CIFAR
    archive, ...: its test split). Image files and folders: read_rows."""
    from .data.sources import load_dataset
    from .data.sources.builtin import read_npz
    from .data.sources.tables import parse_features, read_table

    if not os.path.exists(path):
        raise DataError(f"input file not found: {path}")
    if spec["dataset"] == "text" and not path.endswith((".npy", ".npz")):
        if os.path.isdir(path):
            raise DataError(f"{path} is a folder: a run on text predicts the sentences of one file (one a line)")
        from .data.sources.text import embed

        with open(path, encoding="utf-8") as f:  # "label<TAB>sentence" (the label is ignored) or a sentence a line
            sentences = [line.rstrip("\r\n").rpartition("\t")[2].strip() for line in f if line.strip()]
        return embed(sentences)
    if path.endswith((".csv", ".tsv", ".parquet")):
        header, rows = read_table(path)
        columns = spec.get("feature_columns")
        if columns is None:
            return parse_features(header, rows, -1, path)
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path} lacks the model's feature column(s) {', '.join(missing)}; it has {', '.join(header)}")
        order = [header.index(c) for c in columns]
        return parse_features(columns, [[row[i] for i in order] for row in rows], -1, path)
    if path.endswith(".npy"):
        with open(path, "rb") as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise DataError(f"{path} is not a .npy array (as np.save writes): damaged, or another kind of file")
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"cannot read {path} as a .npy array of numbers: {exc}") from None
    if path.endswith(".npz"):
        arrays = read_npz(path)
        for key in ("x", "x_test"):
            if key in arrays:
                return arrays[key]
        raise DataError(f"{path} holds {sorted(arrays)}; predict reads its 'x' (or 'x_test') array")
    if spec["dataset"] in ("table", "npz"):  # rows come from files of the kinds above, not a dataset path
        what = "a folder" if os.path.isdir(path) else f"a {os.path.splitext(path)[1] or 'extension-less'} file"
        raise DataError(f"{path} is {what}: the model of this run ({spec['dataset']}) predicts rows of a "
                        f"{', '.join(DATA_FILES)} file")
    stored = load_dataset(spec["dataset"], path).x_test
    scaling = spec.get("feature_scaling")
    if scaling:  # the loader's stored features are scaled; the predictor takes raw ones (Preprocess)
        shape = (1, *spec["input_shape"])
        stored = stored * np.asarray(scaling["std"], np.float32).reshape(shape) + \
            np.asarray(scaling["mean"], np.float32).reshape(shape)
    return stored


def write_predictions(path: str, predictor: Predictor, x, keys=None) -> int:
    """CSV of row (``keys``: e.g. image files; default the row number), prediction and one
    probability column per class, written atomically."""
    import csv
    import io

    from .files import write_atomically

    probs = predictor.predict_proba(x)
    labels = predictor.classes_[probs.argmax(axis=1)] if len(probs) else []
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["row", "prediction", *[f"p_{c}" for c in predictor.classes_.tolist()]])
    keys = range(len(probs)) if keys is None else keys
    for key, label, row in zip(keys, labels, probs):
        writer.writerow([key, label, *[f"{p:.6g}" for p in row]])
    write_atomically(path, lambda f: f.write(text.getvalue().encode()))
    return len(probs)


def load_export(path: str):
    """(callable raw inputs -> probabilities, metadata) of a .pt2 written by export_model; needs torch only."""
    extra = {"mentor.json": ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra["mentor.json"])


__all__ = ["InferenceModel", "Predictor", "export_model", "load_export", "load_model", "read_inputs", "read_rows",
           "write_predictions"]
