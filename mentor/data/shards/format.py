"""WebDataset tar shards: the format, its manifest, a writer and an index-based reader.

The format is WebDataset's, as timm and the Hugging Face hub use it: each shard is a POSIX tar
of samples, and a sample is the files sharing a key: ``KEY.png`` or ``KEY.jpg`` (the image) and
``KEY.cls`` (the class index as decimal text; absent from an unlabeled pool). Shards are written
with ``webdataset.TarWriter`` and read by index with ``wids.IndexedTarSamples`` (a memory-mapped
index of one tar's members), so a seeded order of sample indices drives the reads
(``mentor.data.pools``) and a run resumes at an exact position.

``NAME.json`` beside the shards (written by `mentor shards`, last and atomically) is a wids
shard-index descriptor (``"__kind__": "wids-shard-index-v1"``, a ``shardlist`` of url, nsamples,
filesize), with mentor's own fields: each shard's sha256, first sample and class counts; the
image size, channels and encoding; class names; the images' channel mean and std; and
``NAME.labels.npy``, every sample's class in order (-1: none). Shards written elsewhere, without a
manifest, are indexed when opened: one pass over their tar headers and ``.cls`` members.

Written by hand (webdataset and wids have no such thing): the manifest with checksums and class
counts, the resumable writer's bookkeeping, and the checks that name a missing or truncated shard.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ...errors import DataError
from ...files import file_digest

FORMAT = "mentor-shards/1"
IMAGE_KEYS = ("png", "jpg", "jpeg", "webp", "bmp")
ENCODINGS = ("png", "jpg")
SHARD_SUFFIX = re.compile(r"-?\d+\.tar$")


# --- naming ----------------------------------------------------------------------------
def expand(pattern: str) -> List[str]:
    """Shard paths of a pattern: WebDataset's brace notation ('train-{000000..000127}.tar'),
    shell globs, several patterns joined by '::', or a manifest NAME.json (its shards)."""
    from braceexpand import braceexpand

    paths: List[str] = []
    for part in pattern.split("::"):
        if part.endswith(".json"):
            manifest = read_manifest(part)
            base = os.path.dirname(part)
            paths += [os.path.join(base, s["url"]) for s in manifest["shardlist"]]
            continue
        for path in braceexpand(part):
            if any(c in path for c in "*?["):
                found = sorted(glob.glob(path))
                if not found:
                    raise DataError(f"no shard matches {path!r}")
                paths += found
            else:
                paths.append(path)
    if not paths:
        raise DataError(f"the shard pattern {pattern!r} names no file")
    return paths


def manifest_path(shard: str) -> str:
    """Where the manifest of the set holding ``shard`` lies: DIR/NAME.json for DIR/NAME-000003.tar."""
    return os.path.join(os.path.dirname(shard), SHARD_SUFFIX.sub("", os.path.basename(shard)) + ".json")


def read_manifest(path: str) -> dict:
    if not os.path.isfile(path):
        raise DataError(f"shard manifest not found: {path}")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"shard manifest {path} is unreadable or corrupt: {exc}") from None
    if manifest.get("format") != FORMAT or "shardlist" not in manifest:
        raise DataError(f"{path} is not a mentor shard manifest (format {manifest.get('format')!r})")
    return manifest


# --- decoding ---------------------------------------------------------------------------
def decode_image(data: bytes, where: str, channels: int, size: Optional[Tuple[int, int]]) -> np.ndarray:
    """uint8 (C, H, W) of an encoded image in ``channels`` (1: L, 3: RGB); resized to ``size``
    = (H, W) when given, else its own size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode the image of {where}: {exc}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def encode_image(image: np.ndarray, encoding: str) -> bytes:
    """A uint8 (C, H, W) or (H, W[, C]) array as PNG (lossless) or JPEG (quality 95)."""
    from PIL import Image

    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    if encoding == "png":
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    else:
        Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def image_key(sample: dict) -> Optional[str]:
    return next((k for k in IMAGE_KEYS if k in sample), None)


# --- reading ----------------------------------------------------------------------------
class ShardSet:
    """Samples of a list of shards by global index: ``image(i)`` (uint8 C, H, W), ``labels``
    (every sample's class, -1 where none), ``sample(i)`` (its raw files). Up to ``cache``
    shards are open at once (least recently used closed first), so memory stays bounded
    whatever the number of shards. ``size`` = (H, W) resizes every image; without it the
    images must share one size. Picklable (DataLoader workers reopen shards themselves)."""

    def __init__(self, pattern: str, size: Optional[Sequence[int]] = None, cache: int = 8):
        self.pattern = pattern
        self.paths = expand(pattern)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.cache = max(1, int(cache))
        self._open: "OrderedDict[int, object]" = OrderedDict()
        missing = [path for path in self.paths if not os.path.isfile(path)]
        if missing:
            more = f" (and {len(missing) - 1} more of the {len(self.paths)})" if len(missing) > 1 else ""
            raise DataError(f"shard not found: {missing[0]}{more}")
        self.manifest = self._manifest()
        entries = self.manifest["shardlist"]
        for path, entry in zip(self.paths, entries):
            actual = os.path.getsize(path)
            if entry.get("filesize") is not None and actual != entry["filesize"]:
                raise DataError(f"shard {path} is truncated or changed: {actual} bytes, its manifest says "
                                f"{entry['filesize']}")
        self.lengths = np.asarray([int(e["nsamples"]) for e in entries], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.num_classes = self.manifest.get("num_classes")
        self.class_names = self.manifest.get("class_names")
        self.channels = int(self.manifest.get("channels") or 3)  # sets of 1 and 3 channels: read as RGB
        self.image_size = self.manifest.get("image_size")
        if self.size is None and self.image_size is None:
            raise DataError(f"the images of {pattern} differ in size ({self._sizes_text()}); pass --data-hp "
                            "size=H,W to resize them")
        self._labels = None

    # the set as a whole
    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> Tuple[int, int, int]:
        h, w = self.size if self.size is not None else self.image_size
        return (self.channels, int(h), int(w))

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = self._read_labels()
        return self._labels

    def fingerprint(self) -> str:
        """Names the shard set by its files (names, sizes and checksums where the manifest has
        them): a resumed run checks that its shards did not change."""
        digest = hashlib.sha256()
        for path, entry in zip(self.paths, self.manifest["shardlist"]):
            digest.update(f"{os.path.basename(path)}\0{entry['nsamples']}\0{entry.get('filesize')}\0"
                          f"{entry.get('sha256', '')}\n".encode())
        return digest.hexdigest()[:16]

    def _sizes_text(self) -> str:
        sizes = self.manifest.get("sizes") or {}
        return ", ".join(f"{k}: {v}" for k, v in list(sizes.items())[:4]) or "unknown"

    # one sample
    def locate(self, index: int) -> Tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} outside the {len(self)} of {self.pattern}")
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return shard, int(index - self.offsets[shard])

    def _shard(self, shard: int):
        from wids.wids import IndexedTarSamples

        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        path = self.paths[shard]
        try:
            samples = IndexedTarSamples(path=path)
        except FileNotFoundError:
            raise DataError(f"shard not found: {path}") from None
        except Exception as exc:  # a damaged tar: wids raises whatever its parser met
            raise DataError(f"shard {path} is not a readable tar (truncated or damaged?): {exc}") from None
        if len(samples) != self.lengths[shard]:
            samples.close()
            raise DataError(f"shard {path} holds {len(samples)} samples, its manifest says {self.lengths[shard]} "
                            "(truncated or changed since it was written?)")
        self._open[shard] = samples
        while len(self._open) > self.cache:
            _, old = self._open.popitem(last=False)
            old.close()
        return samples

    def _read(self, index: int) -> Tuple[dict, str]:
        """(the sample's files, its shard's path)."""
        shard, inner = self.locate(index)
        try:
            return _plain_keys(self._shard(shard)[inner]), self.paths[shard]
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read sample {inner} of shard {self.paths[shard]}: {exc}") from None

    def sample(self, index: int) -> dict:
        return self._read(index)[0]

    def image(self, index: int) -> np.ndarray:
        sample, path = self._read(index)
        key = image_key(sample)
        where = f"sample {sample.get('__key__')!r} of {path}"
        if key is None:
            raise DataError(f"{where} has no image (files: {sorted(k for k in sample if not k.startswith('__'))}; "
                            f"expected one of {', '.join('.' + k for k in IMAGE_KEYS)})")
        image = decode_image(sample[key], where, self.channels, self.size)
        if image.shape != self.shape:
            raise DataError(f"{where} is {image.shape[2]}x{image.shape[1]}, the set's images "
                            f"{self.shape[2]}x{self.shape[1]}; pass --data-hp size=H,W to resize")
        return image

    def images(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 (n, C, H, W) of samples by index (read in index order: shard by shard)."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices),) + self.shape, dtype=np.uint8)
        for position in np.argsort(indices, kind="stable"):
            out[position] = self.image(int(indices[position]))
        return out

    def close(self) -> None:
        for samples in self._open.values():
            samples.close()
        self._open.clear()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state

    # the manifest, given or made
    def _manifest(self) -> dict:
        """The manifests of the shards' sets merged (a pattern may join several sets with '::'),
        or, when a shard has none, an index made by reading the shards."""
        entries, manifests = [], []
        for path in self.paths:
            where = manifest_path(path)
            if not os.path.isfile(where):
                return self._index_without_manifest()
            if not manifests or manifests[-1][0] != where:
                manifests.append((where, read_manifest(where)))
            manifest = manifests[-1][1]
            entry = next((e for e in manifest["shardlist"] if e["url"] == os.path.basename(path)), None)
            if entry is None:
                return self._index_without_manifest()
            entries.append({**entry, "labels_file": os.path.join(os.path.dirname(where), manifest["labels"])})
        first = manifests[0][1]
        merged = {**first, "shardlist": entries}
        for key in ("image_size", "channel_mean", "channel_std", "channels"):
            if any(m.get(key) != first.get(key) for _, m in manifests):
                merged[key] = None  # sets of other sizes or statistics: decided per set, or resized
        merged["num_classes"] = max((m.get("num_classes") or 0) for _, m in manifests) or None
        if merged["image_size"] is None:
            merged["sizes"] = {k: v for _, m in manifests for k, v in (m.get("sizes") or {}).items()}
        return merged

    def _index_without_manifest(self) -> dict:
        """Shards written elsewhere: count their samples and read their labels (one pass)."""
        from wids.wids import IndexedTarSamples

        entries, labels, sizes = [], [], {}
        channels = None
        for path in self.paths:
            try:
                samples = IndexedTarSamples(path=path)
            except Exception as exc:
                raise DataError(f"shard {path} is not a readable tar (truncated or damaged?): {exc}") from None
            try:
                for i in range(len(samples)):
                    sample = _plain_keys(samples[i])
                    labels.append(_label_of(sample, path))
                    if channels is None:
                        key = image_key(sample)
                        if key is None:
                            raise DataError(f"sample {sample['__key__']!r} of {path} has no image")
                        from PIL import Image
                        with Image.open(io.BytesIO(sample[key])) as image:
                            channels = 1 if image.mode in ("L", "1", "I", "I;16", "F") else 3
                            sizes[f"{image.size[1]}x{image.size[0]}"] = 1
                entries.append({"url": os.path.basename(path), "nsamples": len(samples),
                                "filesize": os.path.getsize(path)})
            finally:
                samples.close()
        y = np.asarray(labels, dtype=np.int64)
        first = next(iter(sizes)) if sizes else None
        return {"format": FORMAT, "shardlist": entries, "labels_array": y, "channels": channels or 3,
                "image_size": None if first is None else [int(v) for v in first.split("x")],
                "num_classes": int(y.max()) + 1 if (y >= 0).any() else None, "sizes": sizes,
                "unchecked_sizes": True}

    def _read_labels(self) -> np.ndarray:
        if "labels_array" in self.manifest:
            return self.manifest["labels_array"]
        parts, opened = [], {}
        for entry in self.manifest["shardlist"]:
            path = entry["labels_file"]
            if path not in opened:
                try:
                    opened[path] = np.load(path, mmap_mode="r")
                except (OSError, ValueError) as exc:
                    raise DataError(f"the labels of {self.pattern} ({path}) are missing or corrupt: {exc}") from None
            parts.append(np.asarray(opened[path][entry["start"]:entry["start"] + entry["nsamples"]]))
        return np.concatenate(parts).astype(np.int64)


def _plain_keys(sample: dict) -> dict:
    """wids names a sample's files by extension with its dot ('.png') and gives them as streams;
    plain names and bytes here."""
    return {k.lstrip(".") if not k.startswith("__") else k: v.getvalue() if isinstance(v, io.BytesIO) else v
            for k, v in sample.items()}


def _label_of(sample: dict, path: str) -> int:
    if "cls" not in sample:
        return -1
    try:
        return int(sample["cls"].decode().strip())
    except ValueError:
        raise DataError(f"sample {sample['__key__']!r} of {path}: its .cls holds {sample['cls'][:20]!r}, "
                        "not a class index") from None


def verify(pattern: str, progress: bool = False) -> List[str]:
    """Shards whose sha256 differs from their manifest's (empty: all intact)."""
    from tqdm.auto import tqdm

    shards = ShardSet(pattern, size=(1, 1))
    bad = []
    for path, entry in tqdm(list(zip(shards.paths, shards.manifest["shardlist"])), disable=not progress,
                            desc="verify", unit="shard"):
        if entry.get("sha256") and file_digest(path) != entry["sha256"]:
            bad.append(path)
    return bad


# --- writing ----------------------------------------------------------------------------
