"""The shard writer of `mentor shards` (mentor.data.shards.inputs gives it its samples): shards of
a fixed size, each written to a temporary file and renamed, the finished ones recorded in
NAME.partial.json so that a killed run, started again, skips what it wrote; then the manifest
NAME.json and NAME.labels.npy (mentor.data.shards.format describes both)."""
from __future__ import annotations

import io
import os
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ...errors import DataError
from ...files import file_digest, read_json, write_atomically, write_json_atomically
from .format import ENCODINGS, FORMAT, decode_image, encode_image, read_manifest

Sample = Tuple[object, int]  # (image: uint8 array or (bytes, extension[, its file]), label or -1)


def write_shards(samples: Iterable[Sample], out: str, name: str, shard_size: int = 10000,
                 encoding: str = "png", total: Optional[int] = None, class_names: Optional[List[str]] = None,
                 num_classes: Optional[int] = None, progress: bool = True, source: Optional[dict] = None) -> dict:
    """Write ``samples`` as out/NAME-000000.tar, ... with ``shard_size`` samples each, and the
    manifest NAME.json plus NAME.labels.npy. Images given as arrays are encoded (``encoding``:
    png, lossless, or jpg); images given as (bytes, extension) are stored as they are. Each shard
    is written to a temporary file and renamed, and NAME.partial.json records the finished
    ones, so a killed run, started again, skips what it wrote (``samples`` must come in the
    same order). ``source``: the fingerprint of what the samples come from
    (mentor.data.fingerprint), kept in both files: a set started or written from another source
    is refused, not continued. Returns the manifest."""
    from tqdm.auto import tqdm
    from webdataset import TarWriter

    if shard_size <= 0:
        raise DataError(f"--shard-size must be positive, got {shard_size}")
    if encoding not in ENCODINGS:
        raise DataError(f"unknown image encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    os.makedirs(out, exist_ok=True)
    for leftover in os.listdir(out):  # what a writer killed mid-file left (write_atomically's names)
        if leftover.startswith(".tmp-") and leftover.endswith((".tar", ".json")):
            os.remove(os.path.join(out, leftover))
    final, partial = os.path.join(out, f"{name}.json"), os.path.join(out, f"{name}.partial.json")
    remedy = f"remove {os.path.join(out, name)}-* and {name}.json / {name}.partial.json, or choose another --out or --name"
    if os.path.exists(final):
        manifest = read_manifest(final)
        if source is not None and manifest.get("mentor", {}).get("source") not in (None, source):
            raise DataError(f"{final} was written from another source than this one; {remedy}")
        return manifest
    state = {"shard_size": shard_size, "encoding": encoding, "shards": [], "labels": [], "sums": None,
             "sizes": {}, "channels": None, "source": source}
    if os.path.exists(partial):
        saved = read_json(partial)
        if source is not None and saved.get("source") not in (None, source):
            raise DataError(f"{partial}: a killed run started this set from another source than this one; {remedy}")
        if saved["shard_size"] == shard_size and saved["encoding"] == encoding:
            state = saved
    done = sum(s["nsamples"] for s in state["shards"])
    bar = tqdm(total=total, initial=done, disable=not progress, desc=f"shards {name}", unit="img")
    iterator = iter(samples)
    for _ in range(done):  # what a killed run already wrote
        next(iterator)
    sums = None if state["sums"] is None else np.asarray(state["sums"], dtype=np.float64)
    while True:
        chunk = _take(iterator, shard_size)
        if not chunk:
            break
        index = len(state["shards"])
        path = os.path.join(out, f"{name}-{index:06d}.tar")
        labels, counts = [], {}
        start = sum(s["nsamples"] for s in state["shards"])

        def write(f, chunk=chunk, start=start):
            nonlocal sums
            with TarWriter(f, mtime=0.0) as sink:  # a fixed time: the same samples give the same bytes
                for offset, (image, label) in enumerate(chunk):
                    key = f"{start + offset:09d}"
                    data, ext, array = _encoded(image, encoding)
                    if state["channels"] is None:
                        state["channels"] = int(array.shape[0])
                    size = f"{array.shape[1]}x{array.shape[2]}"
                    state["sizes"][size] = state["sizes"].get(size, 0) + 1
                    pixels = array.reshape(array.shape[0], -1).astype(np.float64) / 255.0
                    if pixels.shape[0] == state["channels"]:
                        moments = np.stack([pixels.mean(1), (pixels ** 2).mean(1)])
                        sums = moments if sums is None else sums + moments
                    record = {"__key__": key, ext: data}
                    if label is not None and int(label) >= 0:
                        record["cls"] = str(int(label)).encode()
                    sink.write(record)
                    labels.append(-1 if label is None else int(label))
                    counts[str(labels[-1])] = counts.get(str(labels[-1]), 0) + 1

        write_atomically(path, write)
        state["shards"].append({"url": os.path.basename(path), "nsamples": len(chunk), "start": start,
                                "filesize": os.path.getsize(path), "sha256": file_digest(path), "classes": counts})
        state["labels"] += labels
        state["sums"] = sums.tolist()
        write_json_atomically(partial, state)
        bar.update(len(chunk))
    bar.close()
    if not state["shards"]:
        raise DataError(f"nothing to write for {name}: the source holds no image")
    labels = np.asarray(state["labels"], dtype=np.int64)
    n = len(labels)
    moments = np.asarray(state["sums"]) / n
    labeled = labels[labels >= 0]
    if num_classes is None and len(labeled):
        num_classes = int(labeled.max()) + 1
    sizes = dict(sorted(state["sizes"].items(), key=lambda kv: -kv[1]))
    manifest = {
        "__kind__": "wids-shard-index-v1", "wids_version": 1, "name": name, "format": FORMAT,
        "shardlist": state["shards"], "num_samples": n, "num_labeled": int(len(labeled)),
        "num_classes": num_classes, "class_names": class_names,
        "classes": {str(c): int((labels == c).sum()) for c in range(num_classes or 0)},
        "channels": state["channels"], "sizes": sizes,
        "image_size": [int(v) for v in next(iter(sizes)).split("x")] if len(sizes) == 1 else None,
        "encoding": encoding, "channel_mean": moments[0].tolist(),
        "channel_std": np.sqrt(np.maximum(moments[1] - moments[0] ** 2, 0.0)).tolist(),
        "labels": f"{name}.labels.npy",
        "mentor": {"source": source},
    }
    write_atomically(os.path.join(out, manifest["labels"]), lambda f: np.save(f, labels))
    write_json_atomically(final, manifest)
    os.remove(partial)
    return manifest


def _take(iterator: Iterator, count: int) -> list:
    chunk = []
    for item in iterator:
        chunk.append(item)
        if len(chunk) == count:
            break
    return chunk


def _encoded(image, encoding: str) -> Tuple[bytes, str, np.ndarray]:
    """(bytes, extension, uint8 C, H, W array) of a sample's image."""
    if isinstance(image, tuple):  # (bytes, extension[, the file they came from])
        data, ext, where = (*image, "a source image")[:3]
        return data, ext, decode_image(data, where, _channels_of(data, where), None)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3 and array.shape[0] not in (1, 3):
        array = array.transpose(2, 0, 1)
    return encode_image(array, encoding), encoding, array


def _channels_of(data: bytes, where: str) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return 1 if image.mode in ("L", "1", "I", "I;16", "F") else 3
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode the image of {where}: {exc}") from None
