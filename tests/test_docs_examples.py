"""Every example of README.md (and docs/*.md) runs as written: its ```bash and ```python blocks
are extracted and executed in order, in one folder per page, as a reader following the page
would (a later block uses the files an earlier one wrote).

The reader's own files that the pages name (rows.csv, new.csv, photos/, new_photos/,
reviews.tsv, ...) are made here, small. Training is shrunk, not changed: every TrainConfig
built while an example runs (by the command line, the Python API, compare's cells, the
estimator, noisy-student's rounds) is capped at a few steps; a subprocess (torchrun) gets the
same cap through tests/examples_site/sitecustomize.py. A `mentor ...` line runs in this process
(mentor.cli.main) and must exit 0; `make TARGET` is checked to exist (make -n: the targets are
the two setup commands, which CI runs itself); `pip install "mentor[EXTRA]"` is checked to name
a declared extra; any other line runs in bash with the project's environment.

A block may be marked on the line before its fence:
    <!-- example: skip gpu -->                   needs a CUDA device
    <!-- example: skip data CIFAR-10 -->          needs data mentor does not ship
    <!-- example: needs autogluon -->            runs where the optional package imports
    <!-- example: steps 100 -->                  its runs need more steps than the cap to work
                                                 (a teacher confident enough to pseudo-label)
Nothing else is skipped.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = os.path.join(ROOT, "tests", "examples_site")
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
MARK = re.compile(r"<!--\s*example:\s*(.*?)\s*-->")
SKIP_REASONS = ("gpu", "data")


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    mark: Optional[str]


def blocks_of(page: str) -> List[Block]:
    lines = open(page, encoding="utf-8").read().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(bash|python)\s*$", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            previous = lines[i - 1] if i else ""
            mark = MARK.search(previous)
            found.append(Block(os.path.relpath(page, ROOT), i + 1, fence.group(1), "\n".join(lines[i + 1:end]),
                               mark.group(1) if mark else None))
            i = end
        i += 1
    return found


def shell_commands(code: str) -> List[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    commands, current = [], ""
    for line in code.splitlines():
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        words = shlex.split(current, comments=True)
        if words:
            commands.append(current)
        current = ""
    return commands


def make_reader_files(folder: str) -> None:
    """The files the pages call the reader's own, small."""
    from PIL import Image

    from tests.conftest import patch_images

    rng = np.random.default_rng(0)
    species = np.array(["setosa", "versicolor", "virginica"])
    centers = rng.normal(0, 3, (3, 4))

    def table(path, n, labeled):
        y = np.arange(n) % 3
        x = centers[y] + rng.normal(0, 1, (n, 4))
        with open(path, "w") as f:
            f.write("f0,f1,f2,f3,species\n")
            for i in range(n):
                label = species[y[i]] if i < labeled else ""
                f.write(",".join(f"{v:.4f}" for v in x[i]) + f",{label}\n")

    table(os.path.join(folder, "rows.csv"), 90, 30)
    table(os.path.join(folder, "test.csv"), 15, 15)
    table(os.path.join(folder, "new.csv"), 6, 0)

    def images(where, count, labeled):
        x, y = patch_images(count, rng, size=16)
        for i, (image, label) in enumerate(zip(x, y)):
            sub = os.path.join(where, ["cat", "dog", "fox"][label] if labeled else "")
            os.makedirs(sub, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(os.path.join(sub, f"{i:03d}.png"))

    images(os.path.join(folder, "photos", "train"), 24, labeled=True)
    images(os.path.join(folder, "photos", "test"), 9, labeled=True)
    images(os.path.join(folder, "photos", "unlabeled"), 12, labeled=False)
    images(os.path.join(folder, "new_photos"), 4, labeled=False)
    Image.fromarray(patch_images(1, rng, size=16)[0][0].transpose(1, 2, 0)).save(os.path.join(folder, "more.jpg"))
    with open(os.path.join(folder, "points.csv"), "w") as f:
        f.write("x,y\n0.1,0.9\n1.8,-0.2\n")
    words = {"good": ["great fun", "a lovely film", "warm and moving"], "bad": ["dull", "a boring mess", "too long"]}
    with open(os.path.join(folder, "reviews.tsv"), "w") as f, open(os.path.join(folder, "test.tsv"), "w") as t:
        for k in range(12):
            label = "good" if k % 2 else "bad"
            line = f"{words[label][k % 3]} number {k}"
            f.write(f"{label if k < 6 else ''}\t{line}\n")
            t.write(f"{label}\t{words[label][(k + 1) % 3]} again\n")
    with open(os.path.join(folder, "new_sentences.txt"), "w") as f:
        f.write("a lovely warm film\na dull boring mess\n")


def declared_extras() -> set:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def run_shell(command: str, folder: str, where: str) -> None:
    from mentor.cli import main

    words = shlex.split(command, comments=True)
    if words[0] == "mentor":
        code = main(words[1:])
        assert code == 0, f"{where}: `{command}` exited {code}"
    elif words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"{where}: `{command}`: {done.stderr}"
    elif words[:2] == ["pip", "install"]:
        for package in words[2:]:
            extra = re.fullmatch(r"mentor\[(.+)\]", package)
            assert extra is None or set(extra.group(1).split(",")) <= declared_extras(), \
                f"{where}: `{command}` names an extra pyproject.toml does not declare"
    else:
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               "PYTHONPATH": os.pathsep.join([SITE, ROOT])}
        done = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{where}: `{command}` exited {done.returncode}:\n{done.stderr[-3000:]}"


STEPS = 8


def skipped(block: Block) -> Optional[str]:
    """Why the block does not run here (None: it runs), from its mark."""
    if block.mark is None:
        return None
    words = block.mark.split()
    if words[0] == "skip":
        assert words[1:] and words[1] in SKIP_REASONS, f"{block.page}:{block.line}: skip only gpu or data, not {words}"
        return " ".join(words[1:])
    if words[0] == "steps":
        return None
    if words[0] == "needs":
        missing = [name for name in words[1:] if importlib.util.find_spec(name) is None]
        return f"needs {', '.join(missing)}" if missing else None
    raise AssertionError(f"{block.page}:{block.line}: unknown example mark {block.mark!r}")


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_every_example_runs_as_written(page, tmp_path, monkeypatch):
    from mentor.train import config as config_module

    blocks = blocks_of(page)
    assert blocks, f"{page} has no example"
    make_reader_files(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MENTOR_CACHE", str(tmp_path / ".cache"))
    sys.path.insert(0, SITE)
    try:
        from sitecustomize_cap import LIMIT, cap_steps  # the same cap as the subprocesses'
    finally:
        sys.path.remove(SITE)
    cap_steps(config_module.TrainConfig, STEPS, monkeypatch.setattr)
    monkeypatch.setitem(os.environ, "MENTOR_EXAMPLE_STEPS", str(STEPS))
    ran, left = 0, []
    for block in blocks:
        where = f"{block.page}:{block.line}"
        reason = skipped(block)
        if reason:
            left.append(f"{where} ({reason})")
            continue
        steps = re.fullmatch(r"steps (\d+)", block.mark or "")
        LIMIT["steps"] = int(steps.group(1)) if steps else STEPS
        os.environ["MENTOR_EXAMPLE_STEPS"] = str(LIMIT["steps"])
        began = time.perf_counter()
        if block.language == "python":
            exec(compile(block.code, where, "exec"), {"__name__": "__main__"})
        else:
            for command in shell_commands(block.code):
                run_shell(command, str(tmp_path), where)
        ran += 1
        print(f"{where}: {time.perf_counter() - began:.1f} s")
    print(f"{page}: {ran} blocks ran; left out: {left or 'none'}")
