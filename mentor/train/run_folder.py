"""A run's folder (``--out``) and its files; rank 0 writes them, every rank may read them.

  config.json     every setting               split.json      labeled / unlabeled indices and seed
  inputs.json     the run id and the fingerprints of the inputs it read (mentor.data.fingerprint)
  inference.json  what the model needs to take raw inputs (mentor.inference)
  metrics.jsonl   one line per evaluation     checkpoint.pt   latest state, written atomically
  summary.json    final figures and every hyper-parameter   tensorboard/  with --tensorboard
"""
from __future__ import annotations

import json
import os
from typing import List, Optional

from ..files import check_output, read_json, read_jsonl, write_atomically, write_json_atomically
from ..data.fingerprint import check_unchanged, input_fingerprint, new_run_id
from ..errors import CheckpointError, ConfigError
from .checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT = "checkpoint.pt"
INFERENCE = "inference.json"
INPUTS = "inputs.json"
METRICS = "metrics.jsonl"


def inputs_of(config) -> dict:
    return input_fingerprint(config.data_path, config.dataset_options)


def check_run_id(state: dict, run_id: Optional[str], where: str) -> None:
    """A CheckpointError where the checkpoint ``state`` was written by another run than the one
    whose id the folder ``where`` recorded (None: a run from before run ids, taken as it is)."""
    if run_id is not None and state.get("run_id") not in (None, run_id):
        raise CheckpointError(f"the checkpoint in {where} was written by another run (run id {state.get('run_id')}, "
                              f"the folder's {run_id}): copied from another run folder? Put back this run's "
                              "checkpoint, or train afresh")


class RunFolder:
    def __init__(self, out: str):
        self.out = out
        self.writer = None  # TensorBoard's, opened at the first record

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)

    def claim(self, resume: bool) -> None:
        """The folder exists; a resumed run has a checkpoint there, a new one finds no run there."""
        os.makedirs(check_output(self.out, folder=True), exist_ok=True)
        has_checkpoint = os.path.exists(self.path(CHECKPOINT))
        if resume and not has_checkpoint:
            raise CheckpointError(f"nothing to resume: no {CHECKPOINT} in {self.out}")
        if not resume and (has_checkpoint or os.path.exists(self.path(METRICS))):
            raise ConfigError(f"{self.out} already holds a run; pass --resume (resume=True in Python) to continue it "
                              "or choose another --out")

    def start(self, config, split, inference_spec: dict) -> str:
        """A new run's first files; returns its run id."""
        run_id = new_run_id()
        write_json_atomically(self.path(INPUTS), {"run_id": run_id, "inputs": inputs_of(config)})
        write_json_atomically(self.path("config.json"), config.to_dict())
        split.save(self.path("split.json"))
        write_json_atomically(self.path(INFERENCE), inference_spec)
        return run_id

    def recorded_run_id(self) -> Optional[str]:
        """The run id inputs.json records (None for runs from before it)."""
        return read_json(self.path(INPUTS)).get("run_id") if os.path.exists(self.path(INPUTS)) else None

    def bind(self, config, check_inputs: bool = True) -> Optional[str]:
        """The run id the folder's checkpoints must carry, once the inputs ``config`` names are
        checked to be those the run recorded. Without inputs.json nothing can be checked: refused,
        unless ``check_inputs`` is False (--no-input-check; the run id is then None)."""
        if not os.path.exists(self.path(INPUTS)):
            if check_inputs:
                raise ConfigError(f"{self.out} has no {INPUTS}, so the inputs this run was trained on cannot be "
                                  "checked (the file was removed, or the run is from before mentor recorded them); "
                                  "pass --no-input-check (check_inputs=False in Python) to go on without the check")
            return None
        saved = read_json(self.path(INPUTS))
        if check_inputs:
            check_unchanged(saved.get("inputs", {}), inputs_of(config), f"the run in {self.out}",
                            "Restore them, or train afresh into another --out")
        return saved.get("run_id")

    def load_checkpoint(self, device) -> dict:
        return load_checkpoint(self.path(CHECKPOINT), map_location=device)

    def save_checkpoint(self, state: dict) -> None:
        save_checkpoint(state, self.path(CHECKPOINT))

    def metrics_until(self, step: int, rewrite: bool = True) -> List[dict]:
        """The evaluations up to ``step`` (the checkpoint's); later lines, written before a kill
        caught the checkpoint, and a torn last line are dropped from the file (``rewrite``: rank 0)."""
        if not os.path.exists(self.path(METRICS)):
            return []
        records = [r for r in read_jsonl(self.path(METRICS)) if r["step"] <= step]
        if rewrite:
            write_atomically(self.path(METRICS), lambda f: f.write("".join(json.dumps(r) + "\n" for r in records).encode()))
        return records

    def log(self, record: dict, tensorboard: bool = False) -> None:
        with open(self.path(METRICS), "a") as f:
            f.write(json.dumps(record) + "\n")
        if not tensorboard:
            return
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(self.path("tensorboard"), purge_step=record["step"])
        for key, value in record.items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    self.writer.add_scalar(f"{key}/{sub}", v, record["step"])
            elif key != "step":
                self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def write_summary(self, summary: dict) -> None:
        with open(self.path("summary.json"), "w") as f:
            json.dump(summary, f, indent=2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
