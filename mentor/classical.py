"""Classical (scikit-learn) models as mentor models: their features, their probabilities over
every class, a file format that loads only known types, and ONNX.

A classical model sees a dataset's rows as stored, flattened to floats (``as_features``): a
table's standardised columns, a text's embeddings, an image's pixels in [0, 1], a cached
embedding's clean view. It is saved with skops (the scikit-learn project's secure format: no
pickle; loading refuses any type outside scikit-learn, NumPy and SciPy) and exported to ONNX
with skl2onnx, behind the same raw-input preprocessing as a network's run folder.

Written by hand here, because neither library has it:
- LabelSpreading has no ONNX converter. Its ``predict_proba`` (kernel "knn") is the mean of
  the spread label distributions of the k nearest training rows, normalised, which is a
  KNeighborsRegressor over ``X_`` with targets ``label_distributions_``: that is what is
  exported, followed by the normalisation (a row no label reached is uniform, and its class
  the first, as scikit-learn's argmax gives).
- SelfTrainingClassifier's probabilities are its final estimator's: that estimator is exported.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import List, Optional

import numpy as np

from .files import read_json as read_json_file, write_atomically
from .errors import CheckpointError, ConfigError

MODEL_FILE = "model.skops"
# The other files of a delivered model folder that is not a network run (mentor.compare.deliver)
ENSEMBLE_FILE = "ensemble.json"
MODEL_INFO = "model.json"
TEST_PREDICTIONS = "test_predictions.npz"
# Module prefixes of the types a classical model may hold; loading refuses any other.
KNOWN_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "_codecs.", "numpy")


def as_features(x: np.ndarray) -> np.ndarray:
    """Rows as a 2-D float array: uint8 images become pixels in [0, 1]; cached embedding views
    (n, 1 + 2K, dim) (mentor.embedding) their clean embedding."""
    x = np.asarray(x)
    if x.ndim == 3 and x.dtype != np.uint8:
        x = x[:, 0]
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    width = int(np.prod(x.shape[1:]))  # reshape(0, -1) cannot infer the width of no rows
    return (x.reshape(len(x), width).astype(np.float32) / scale)


def probabilities(model, features: np.ndarray, num_classes: int) -> np.ndarray:
    """(n, num_classes) probabilities of a fitted classifier, every class a column even when the
    rows it was fitted on lacked one (scikit-learn's columns are its ``classes_``). A row with
    no probability (LabelSpreading's rows that no label reached: NaN) is uniform."""
    out = np.zeros((len(features), num_classes), dtype=np.float64)
    if len(features) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # LabelSpreading's 0/0 on those rows, made uniform below
        proba = np.asarray(model.predict_proba(features), dtype=np.float64)
    out[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    empty = ~np.isfinite(out).all(axis=1) | (out.sum(axis=1) <= 0)
    out[empty] = 1.0 / num_classes
    return out


def save_model(folder: str, model) -> str:
    """OUT/model.skops, written atomically."""
    import skops.io as sio

    buffer = io.BytesIO()
    sio.dump(model, buffer)
    path = os.path.join(folder, MODEL_FILE)
    write_atomically(path, lambda f: f.write(buffer.getvalue()))
    return path


def load_model_file(path: str):
    """A classical model saved by save_model; refuses a file holding any type outside
    scikit-learn, NumPy and SciPy (naming them), and a corrupt file."""
    import skops.io as sio

    if not os.path.exists(path):
        raise CheckpointError(f"no classical model file {path}")
    try:
        types = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable skops model file ({type(exc).__name__}: {exc})") from None
    unknown = [t for t in types if not t.startswith(KNOWN_MODULES)]
    if unknown:
        raise CheckpointError(f"{path} holds types mentor does not load: {', '.join(unknown)} "
                              "(only scikit-learn, NumPy and SciPy types are trusted)")
    try:
        return sio.load(path, trusted=types)
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be loaded ({type(exc).__name__}: {exc})") from None


# --- ONNX ---------------------------------------------------------------------------------
def _exportable(model):
    """(the estimator whose ONNX form gives ``model``'s probabilities, whether its output needs
    normalising (LabelSpreading's k-NN form), the class of each output column)."""
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    if isinstance(model, SelfTrainingClassifier):
        return _exportable(model.estimator_)
    classes = np.asarray(model.classes_, dtype=np.int64)
    if isinstance(model, LabelSpreading):
        if model.kernel != "knn":
            raise ConfigError("LabelSpreading with an rbf kernel has no ONNX form (its prediction weighs every "
                              "training row); fit it with kernel='knn' to export")
        knn = KNeighborsRegressor(n_neighbors=model.n_neighbors, algorithm="brute")
        knn.fit(np.asarray(model.X_, dtype=np.float32), np.asarray(model.label_distributions_, dtype=np.float32))
        return knn, True, classes
    return model, False, classes


def onnx_model(model, shift: np.ndarray, scale: np.ndarray, num_classes: int, opset: int = 18):
    """An ONNX model (input "x": (n, features) float32 raw rows; output "probabilities": (n,
    num_classes)) computing (x - shift) / scale, then ``model``'s probabilities over every class.
    Raises ConfigError naming the reason when the estimator does not convert."""
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper
    from skl2onnx import to_onnx

    estimator, normalise, columns = _exportable(model)
    width = len(shift)
    sample = np.zeros((1, width), dtype=np.float32)
    name = type(model).__name__
    try:
        options = None if normalise else {id(estimator): {"zipmap": False}}
        converted = to_onnx(estimator, sample, options=options, target_opset={"": opset, "ai.onnx.ml": 3})
    except Exception as exc:  # skl2onnx raises many kinds; the reason goes to the user as it is
        raise ConfigError(f"{name} does not convert to ONNX here (skl2onnx: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:300]}); mentor predict serves it") from None
    converted = compose.add_prefix(converted, "estimator_")  # its names apart from the wrapper's ("probabilities")
    graph = converted.graph
    raw = graph.output[-1].name  # classifiers: label then probabilities; the regressor: its output
    inner_input = graph.input[0].name
    # (x - shift) / scale before the estimator's graph; its input renamed to the scaled rows
    for node in graph.node:
        node.input[:] = ["scaled_x" if i == inner_input else i for i in node.input]
    pre = [helper.make_node("Sub", ["x", "shift"], ["shifted_x"]), helper.make_node("Div", ["shifted_x", "scale"],
                                                                                   ["scaled_x"])]
    post: List = []
    current = raw
    if normalise:  # LabelSpreading: mean of spread distributions -> normalised, empty rows uniform
        post += [helper.make_node("Add", [current, "tiny"], ["lifted"]),
                 helper.make_node("ReduceSum", ["lifted", "axis1"], ["row_sum"], keepdims=1),
                 helper.make_node("Div", ["lifted", "row_sum"], ["normalised"])]
        current = "normalised"
    if len(columns) != num_classes or not np.array_equal(columns, np.arange(num_classes)):
        # a fold that lacked a class: scatter the estimator's columns into every class's
        post.append(helper.make_node("MatMul", [current, "columns"], ["spread"]))
        current = "spread"
    post.append(helper.make_node("Cast", [current], ["probabilities"], to=TensorProto.FLOAT))
    initializers = [numpy_helper.from_array(np.asarray(shift, np.float32), "shift"),
                    numpy_helper.from_array(np.asarray(scale, np.float32), "scale")]
    if normalise:
        initializers += [numpy_helper.from_array(np.array([1e-12], np.float32), "tiny"),
                         numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    if current == "spread":
        scatter = np.zeros((len(columns), num_classes), dtype=np.float32)
        scatter[np.arange(len(columns)), columns] = 1.0
        initializers.append(numpy_helper.from_array(scatter, "columns"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", num_classes])
    merged = helper.make_graph(pre + list(graph.node) + post, "mentor_classical", [x], [y],
                               initializer=list(graph.initializer) + initializers)
    result = helper.make_model(merged, opset_imports=list(converted.opset_import), producer_name="mentor")
    result.ir_version = converted.ir_version
    onnx.checker.check_model(result)
    return result


def describe(model) -> str:
    """One line: the estimator and its parameters that differ from scikit-learn's defaults."""
    params = model.get_params(deep=False)
    defaults = type(model)().get_params(deep=False) if type(model).__name__ != "SelfTrainingClassifier" else {}
    changed = {k: v for k, v in params.items() if k in defaults and defaults[k] != v and not hasattr(v, "fit")}
    return f"{type(model).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def read_json(path: str) -> Optional[dict]:
    if not os.path.exists(path):
        return None
    return read_json_file(path)


# What identifies an ensemble member: the digest of its model file (a network's checkpoint, named
# as mentor.train.CHECKPOINT, or a classical model), recorded in ensemble.json and checked on load.
MEMBER_MODEL_FILES = ("checkpoint.pt", MODEL_FILE)


def member_identity(folder: str) -> dict:
    """{"model_file", "sha256"} of a member folder's model file."""
    from .files import file_digest

    for name in MEMBER_MODEL_FILES:
        if os.path.exists(os.path.join(folder, name)):
            return {"model_file": name, "sha256": file_digest(os.path.join(folder, name))}
    raise CheckpointError(f"{folder} holds no model file ({' or '.join(MEMBER_MODEL_FILES)})")


def check_ensemble(listing: dict, run_dir: str) -> List[float]:
    """The members' weights, once ensemble.json is checked: weights finite, >= 0 and summing to 1,
    and each member's model file the one delivered (where its digest was recorded); a
    CheckpointError naming the problem otherwise."""
    members = listing.get("members") if isinstance(listing, dict) else None
    if not members or not all(isinstance(m, dict) and "folder" in m and "weight" in m for m in members):
        raise CheckpointError(f"{run_dir}/{ENSEMBLE_FILE} lists no members (each needs a folder and a weight): "
                              "a damaged ensemble; deliver it again with mentor compare --fit-best")
    try:
        weights = [float(m["weight"]) for m in members]
    except (TypeError, ValueError):
        raise CheckpointError(f"{run_dir}/{ENSEMBLE_FILE}: a member weight is not a number") from None
    bad = [f"{m['folder']} ({w!r})" for m, w in zip(members, weights) if not np.isfinite(w) or w < 0]
    if bad:
        raise CheckpointError(f"{run_dir}/{ENSEMBLE_FILE}: member weights must be >= 0; {', '.join(bad)}")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise CheckpointError(f"{run_dir}/{ENSEMBLE_FILE}: member weights sum to {sum(weights):.6g}, not 1")
    for member in members:
        if "sha256" not in member:  # delivered before members' identities were recorded
            continue
        folder = os.path.join(run_dir, member["folder"])
        found = member_identity(folder) if os.path.isdir(folder) else None
        if found != {"model_file": member.get("model_file"), "sha256": member["sha256"]}:
            raise CheckpointError(f"{folder}: not the member that was delivered (its {member.get('model_file')} "
                                  "differs from the one ensemble.json records); put back the delivered files, or "
                                  "deliver the ensemble again with mentor compare --fit-best")
    return weights
