"""WebDataset shards: `mentor shards` writes them (resumably, with a manifest), the reader names
what is wrong with them, the streamed order is a seeded permutation with read locality, and
training, evaluation, pseudo-labelling and Noisy Student run from them with exact resume."""
import io
import json
import os

import numpy as np
import pytest
import torch

from mentor.cli import main
from mentor.data.shards.pool import WindowedOrder
from mentor.data.shards import ShardSet, verify, write_shards
from mentor.errors import CheckpointError, ConfigError, DataError
from mentor.train import TrainConfig, Trainer

from conftest import patch_images


def tiny_images(n, seed=0):
    return patch_images(n, np.random.default_rng(seed))


def rows(x, y=None):
    return ((image, -1 if y is None else int(label)) for image, label in zip(x, y if y is not None else [None] * len(x)))


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """train (60 labeled, 4 shards), test (24), pool (90 unlabeled, 3 shards)."""
    out = str(tmp_path_factory.mktemp("shards"))
    x, y = tiny_images(60)
    write_shards(rows(x, y), out, "train", shard_size=15, progress=False)
    xt, yt = tiny_images(24, seed=1)
    write_shards(rows(xt, yt), out, "test", shard_size=24, progress=False)
    xu, _ = tiny_images(90, seed=2)
    write_shards(rows(xu), out, "pool", shard_size=30, progress=False)
    return out


def shard_options(shard_dir, **extra):
    return {"test_path": os.path.join(shard_dir, "test.json"), "workers": 0,
            "unlabeled_path": os.path.join(shard_dir, "pool-{000000..000002}.tar"), **extra}


def shard_config(shard_dir, method="fixmatch", out=None, **overrides):
    options = shard_options(shard_dir, **overrides.pop("dataset_options", {}))
    base = dict(method=method, dataset="shards", data_path=os.path.join(shard_dir, "train-{000000..000003}.tar"),
                dataset_options=options, num_labeled=9, model="small_cnn", model_options={"widths": [4, 8]},
                steps=6, batch_size=6, unlabeled_batch_size=12, lr=0.05, eval_every=3, seed=0, device="cpu",
                out=out, progress=False, method_options={"threshold": 0.0} if method == "fixmatch" else {})
    base.update(overrides)
    return TrainConfig(**base)


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.method.models.state_dict().items()}


# --- the format ------------------------------------------------------------------------------
def test_written_shards_read_back_with_their_manifest(shard_dir):
    shards = ShardSet(os.path.join(shard_dir, "train-{000000..000003}.tar"))
    x, y = tiny_images(60)
    assert len(shards) == 60 and shards.shape == (3, 8, 8)
    assert np.array_equal(shards.labels, y)
    assert np.array_equal(shards.images([0, 17, 59, 3]), x[[0, 17, 59, 3]])  # PNG: lossless
    manifest = json.load(open(os.path.join(shard_dir, "train.json")))
    assert manifest["__kind__"] == "wids-shard-index-v1" and manifest["num_samples"] == 60
    assert manifest["classes"] == {"0": 20, "1": 20, "2": 20} and manifest["image_size"] == [8, 8]
    assert [s["nsamples"] for s in manifest["shardlist"]] == [15] * 4
    assert sum(s["classes"]["0"] for s in manifest["shardlist"]) == 20
    assert np.allclose(manifest["channel_mean"], (x / 255.0).mean(axis=(0, 2, 3)))
    assert verify(os.path.join(shard_dir, "train.json")) == []
    # the manifest, a glob and a brace pattern name the same set
    assert ShardSet(os.path.join(shard_dir, "train-*.tar")).fingerprint() == shards.fingerprint()
    # '::' joins sets, each read with its own manifest (a subset of a set's shards is a set)
    joined = ShardSet(os.path.join(shard_dir, "pool-{000001..000002}.tar") + "::" + os.path.join(shard_dir, "train.json"))
    assert len(joined) == 120 and "labels_array" not in joined.manifest
    assert np.array_equal(joined.labels, np.concatenate([np.full(60, -1), y]))
    assert np.array_equal(joined.images([60 + 17]), x[[17]])


def test_a_killed_writer_resumes_to_the_same_shards(tmp_path):
    x, y = tiny_images(50)
    straight = write_shards(rows(x, y), str(tmp_path / "a"), "s", shard_size=10, progress=False)

    def dying():
        for i, row in enumerate(rows(x, y)):
            if i == 27:
                raise KeyboardInterrupt
            yield row

    with pytest.raises(KeyboardInterrupt):
        write_shards(dying(), str(tmp_path / "b"), "s", shard_size=10, progress=False)
    assert sorted(os.listdir(tmp_path / "b")) == ["s-000000.tar", "s-000001.tar", "s.partial.json"]
    resumed = write_shards(rows(x, y), str(tmp_path / "b"), "s", shard_size=10, progress=False)
    assert [s["sha256"] for s in resumed["shardlist"]] == [s["sha256"] for s in straight["shardlist"]]
    assert not os.path.exists(tmp_path / "b" / "s.partial.json")


def test_the_shards_command_writes_a_dataset_a_folder_and_a_csv(tmp_path, capsys):
    from PIL import Image

    for label, name in enumerate(["cat", "dog"]):
        os.makedirs(tmp_path / "photos" / name)
        for i in range(3):
            Image.fromarray(np.full((6, 5, 3), 40 * i + 100 * label, np.uint8)).save(tmp_path / "photos" / name / f"{i}.png")
    assert main(["shards", "--from", str(tmp_path / "photos"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    photos = ShardSet(str(tmp_path / "out" / "photos.json"))
    assert photos.class_names == ["cat", "dog"] and list(photos.labels) == [0, 0, 0, 1, 1, 1]
    assert photos.images([4])[0, 0, 0, 0] == 140
    with open(tmp_path / "list.csv", "w") as f:
        f.write("path,label\nphotos/cat/0.png,1\nphotos/dog/2.png,\n")
    assert main(["shards", "--from", str(tmp_path / "list.csv"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert list(ShardSet(str(tmp_path / "out" / "list.json")).labels) == [1, -1]
    assert main(["shards", "--dataset", "digits", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "features, not images" in capsys.readouterr().err
    np.save(tmp_path / "pool.npy", tiny_images(7)[0])
    assert main(["shards", "--from", str(tmp_path / "pool.npy"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "pool: 7 images (0 labeled) in 1 shard(s)" in capsys.readouterr().out
    assert main(["shards", "--verify", str(tmp_path / "out" / "pool-000000.tar")]) == 0


def test_bad_shards_get_errors_that_name_them(shard_dir, tmp_path):
    from webdataset import TarWriter

    with pytest.raises(DataError, match="shard not found: .*train-000004.tar \\(and 5 more of the 10\\)"):
        ShardSet(os.path.join(shard_dir, "train-{000000..000009}.tar"))
    broken = tmp_path / "broken"
    os.makedirs(broken)
    for name in os.listdir(shard_dir):
        if name.startswith("train"):
            with open(os.path.join(shard_dir, name), "rb") as f:
                data = f.read()
            with open(broken / name, "wb") as f:
                f.write(data[:len(data) // 2] if name == "train-000002.tar" else data)
    with pytest.raises(DataError, match="train-000002.tar is truncated or changed"):
        ShardSet(str(broken / "train-{000000..000003}.tar"))
    # shards written elsewhere (no manifest): a sample without an image, one without a label
    with open(tmp_path / "other-000000.tar", "wb") as f, TarWriter(f) as sink:
        sink.write({"__key__": "a", "png": _png(8, 8), "cls": b"1"})
        sink.write({"__key__": "b", "txt": b"no image", "cls": b"0"})
    shards = ShardSet(str(tmp_path / "other-000000.tar"))
    assert list(shards.labels) == [1, 0] and shards.images([0]).shape == (1, 3, 8, 8)
    with pytest.raises(DataError, match="'b' of .*other-000000.tar has no image"):
        shards.images([1])
    with open(tmp_path / "mixed-000000.tar", "wb") as f, TarWriter(f) as sink:
        sink.write({"__key__": "a", "png": _png(8, 8), "cls": b"0"})
        sink.write({"__key__": "b", "png": _png(6, 8)})
    with pytest.raises(DataError, match="is 8x6, the set's images 8x8; pass --data-hp size=H,W"):
        ShardSet(str(tmp_path / "mixed-000000.tar")).images([0, 1])
    assert ShardSet(str(tmp_path / "mixed-000000.tar"), size=(4, 4)).images([0, 1]).shape == (2, 3, 4, 4)
    config = shard_config(shard_dir, data_path=str(tmp_path / "mixed-000000.tar"))
    with pytest.raises(DataError, match="1 sample\\(s\\) of the training shards .* have no label"):
        Trainer(config)


def _png(h, w):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_windowed_order_is_a_seeded_permutation_per_epoch_with_locality():
    sizes = [10, 7, 13, 10, 5, 9]
    order = WindowedOrder(sizes, seed=3, window=2, excluded=np.array([0, 11, 40]))
    n = sum(sizes) - 3
    epoch = order.take(0, n)
    assert sorted(epoch) == sorted(set(range(sum(sizes))) - {0, 11, 40})
    assert not np.array_equal(order.take(n, n), epoch)  # the next epoch is another permutation
    assert np.array_equal(np.concatenate([order.take(0, 17), order.take(17, 40)]), order.take(0, 57))
    assert np.array_equal(WindowedOrder(sizes, seed=3, window=2, excluded=np.array([0, 11, 40])).take(30, 20),
                          order.take(30, 20))  # a pure function of the position: resumable anywhere
    offsets = np.cumsum([0] + sizes)
    shards = np.searchsorted(offsets, order.take(0, 12), side="right") - 1
    assert len(set(shards)) <= 2  # a batch reads from one window of shards


# --- training from shards ----------------------------------------------------------------------
def test_fixmatch_trains_from_shards_and_resumes_exactly(shard_dir, tmp_path):
    straight = Trainer(shard_config(shard_dir, out=str(tmp_path / "a")))
    summary = straight.fit()
    assert summary["num_unlabeled"] == 60 + 90 and straight.split.unlabeled == []
    assert json.load(open(tmp_path / "a" / "split.json"))["streamed_pool"]["size"] == 150
    killed = Trainer(shard_config(shard_dir, out=str(tmp_path / "b")))
    original, calls = killed.stream.next, {"n": 0}

    def dying():
        calls["n"] += 1
        if calls["n"] == 5:  # after step 3's checkpoint
            raise KeyboardInterrupt
        return original()

    killed.stream.next = dying
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed = Trainer(shard_config(shard_dir, out=str(tmp_path / "b")))
    resumed.fit(resume=True)
    for key, value in weights(straight).items():
        assert torch.equal(weights(resumed)[key], value), key
    # decoding in worker processes reads the same batches
    workers = Trainer(shard_config(shard_dir, out=str(tmp_path / "c"), dataset_options={"workers": 2}))
    workers.fit()
    for key, value in weights(straight).items():
        assert torch.equal(weights(workers)[key], value), key


def test_the_streamed_test_split_scores_as_in_memory(shard_dir):
    from mentor.train.trainer import evaluate

    trainer = Trainer(shard_config(shard_dir, steps=2, eval_every=0))
    trainer.fit()
    xt, yt = tiny_images(24, seed=1)
    in_memory = evaluate(trainer.method.eval_model(), torch.as_tensor(xt), torch.as_tensor(yt),
                         transform=trainer.views.eval)
    streamed = trainer.evaluate()
    assert streamed["test_accuracy"] == in_memory["accuracy"]
    assert streamed["test_loss"] == pytest.approx(in_memory["loss"], rel=1e-6)


def test_a_changed_shard_set_is_refused_on_resume(shard_dir, tmp_path):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(shard_dir, copy)
    Trainer(shard_config(copy, out=str(tmp_path / "run"))).fit()
    x, _ = tiny_images(30, seed=9)
    os.remove(os.path.join(copy, "pool.json"))
    write_shards(rows(x), copy, "pool", shard_size=30, progress=False)  # pool-000000.tar rewritten
    with pytest.raises(ConfigError, match="inputs of the run in .* changed since it was made: unlabeled_path"):
        Trainer(shard_config(copy, out=str(tmp_path / "run"))).fit(resume=True)
    os.remove(os.path.join(tmp_path, "run", "inputs.json"))  # refused by name, unless told: then the pool's own check
    with pytest.raises(ConfigError, match="has no inputs.json.*--no-input-check"):
        Trainer(shard_config(copy, out=str(tmp_path / "run"))).fit(resume=True)
    with pytest.raises(CheckpointError, match="shards of the unlabeled pool changed"):
        Trainer(shard_config(copy, out=str(tmp_path / "run"))).fit(resume=True, check_inputs=False)


def test_methods_that_hold_the_whole_pool_refuse_a_streamed_one(shard_dir):
    with pytest.raises(ConfigError, match="temporal_ensembling.*keeps a running prediction.*cannot stream"):
        Trainer(shard_config(shard_dir, method="temporal_ensembling", method_options={}))
    with pytest.raises(ConfigError, match="noisy_student.*mentor pseudo-label"):
        Trainer(shard_config(shard_dir, method="noisy_student", method_options={}))
    with pytest.raises(ConfigError, match="unlabeled_fraction shape an in-memory pool"):
        Trainer(shard_config(shard_dir, unlabeled_fraction=0.5))


# --- Noisy Student from shards ---------------------------------------------------------------------
def test_streamed_selection_matches_filter_and_balance(tmp_path):
    from mentor.pseudo_labels import ArrayPool, filter_and_balance, label_pool, read_labels, select_streamed

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4)) * 3

    class Table(torch.nn.Module):
        def forward(self, x):
            return torch.as_tensor(logits, dtype=torch.float32)[x.long().flatten()]

    label_pool(Table(), lambda x: x, ArrayPool(np.arange(500)[:, None], "pool"), str(tmp_path), 4,
               torch.device("cpu"), batch_size=64, shard_size=128, progress=False)
    labels = read_labels(str(tmp_path))
    for balance, per_class in ((False, None), (True, None), (True, 200)):
        memory = filter_and_balance(labels.argmax, labels.confidence, 4, 0.4, per_class, balance, seed=0)
        positions, stats, _ = select_streamed(str(tmp_path), 4, 0.4, per_class, balance, seed=0)
        assert [s["threshold"] for s in stats] == [s["threshold"] for s in memory.per_class]
        assert [s["above"] for s in stats] == [s["above"] for s in memory.per_class]
        if not balance:
            assert np.array_equal(positions, memory.positions)
        else:  # drawn among the same candidates, their copies by another generator
            thresholds = np.asarray([s["threshold"] for s in stats])
            candidates = np.flatnonzero(labels.confidence >= thresholds[labels.argmax])
            assert set(np.unique(positions)) <= set(candidates)
            for mine, theirs in zip(stats, memory.per_class):
                assert abs(mine["copies"] - theirs["copies"]) <= max(3, 0.15 * theirs["copies"])
        assert np.all(np.diff(positions) >= 0) and sum(s["copies"] for s in stats) == len(positions)
    held_out = np.arange(0, 500, 2)
    positions, _, _ = select_streamed(str(tmp_path), 4, 0.4, None, True, seed=0, excluded=held_out)
    assert not np.isin(positions, held_out).any()


def test_noisy_student_round_from_shards(shard_dir, tmp_path):
    from mentor.pipelines.noisy_student import run_noisy_student

    config = shard_config(shard_dir, method="supervised", method_options={}, steps=4, eval_every=0,
                          randaugment_ops=1)
    table = run_noisy_student(config, rounds=1, out=str(tmp_path / "ns"), student_width=1.0, progress=False)
    student = table["rounds"][1]
    assert student["pseudo_labeled"] > 0 and 0 <= student["student_test_accuracy"] <= 1
    labels = json.load(open(tmp_path / "ns" / "round-1" / "labels" / "manifest.json"))
    assert labels["num_examples"] == 150 and labels["source"].startswith("shards:150:")
    assert any(name.startswith("selection-") for name in os.listdir(tmp_path / "ns" / "round-1" / "labels"))
    # the student streamed its selection: no pool or selection held in the method
    state = torch.load(tmp_path / "ns" / "round-1" / "checkpoint.pt", weights_only=False)
    assert state["stream"]["unlabeled"]["position"] == 4 and not state["method"].get("extra")


def test_the_streamed_selection_brings_each_example_with_its_own_teacher_labels(shard_dir, tmp_path):
    """Every streamed pseudo-labeled example comes with the teacher's distribution *of that
    example*: the pool's images are told apart by an id painted into their pixels."""
    from mentor.data.shards.pool import ShardPool
    from mentor.pipelines.noisy_student import label_with
    from mentor.pseudo_labels import read_labels

    x, _ = tiny_images(90, seed=2)
    x[:, 0, 0, 0] = np.arange(90)  # pixel (0, 0) of channel 0 = the image's position in the pool
    write_shards(rows(x), str(tmp_path), "pool", shard_size=30, progress=False)
    config = shard_config(shard_dir, method="supervised", method_options={}, steps=2, out=str(tmp_path / "t"),
                          dataset_options={"unlabeled_path": str(tmp_path / "pool.json")})
    teacher = Trainer(config)
    teacher.fit()
    label_with(teacher, str(tmp_path / "labels"), progress=False)
    probs = read_labels(str(tmp_path / "labels")).probs.astype(np.float32)
    config = shard_config(shard_dir, method="noisy_student", out=str(tmp_path / "s"),
                          method_options={"pseudo_labels": str(tmp_path / "labels"), "threshold": 0.0},
                          dataset_options={"unlabeled_path": str(tmp_path / "pool.json")})
    student = Trainer(config)
    assert isinstance(student.pool, ShardPool) and student.pool.positions is not None
    for _ in range(3):
        batch = student.stream.next()
        extra = batch.x_u_stored[:, 0, 0, 0].long()  # which pool image each example is
        positions = student.pool.source_positions(batch.idx_u.numpy())
        training = positions < 60  # the training shards come first in the pool
        assert torch.equal(extra[~torch.as_tensor(training)], torch.as_tensor(positions[~training] - 60))
        torch.testing.assert_close(batch.y_u, torch.as_tensor(probs[positions]))


def test_pseudo_label_command_reads_shards(shard_dir, tmp_path, capsys):
    run = str(tmp_path / "teacher")
    Trainer(shard_config(shard_dir, method="supervised", method_options={}, steps=2, out=run)).fit()
    pool = os.path.join(shard_dir, "pool-{000000..000002}.tar")
    assert main(["pseudo-label", run, "--data", pool, "--out", str(tmp_path / "labels"), "--shard-size", "40",
                 "--no-progress", "--device", "cpu"]) == 0
    manifest = json.load(open(tmp_path / "labels" / "manifest.json"))
    assert manifest["num_examples"] == 90 and manifest["num_shards"] == 3 and manifest["complete"]


# --- several processes -------------------------------------------------------------------------
def test_each_rank_decodes_its_slice_of_the_global_batch(shard_dir):
    from mentor.data.shards.pool import _BatchReads

    pool = Trainer(shard_config(shard_dir)).pool
    order = WindowedOrder(pool.unit_sizes, 0, pool.window, pool.excluded)
    one = _BatchReads(pool, order, 12, 0, 1)[3]
    parts = [_BatchReads(pool, order, 6, rank, 2)[3] for rank in (0, 1)]
    assert torch.equal(torch.cat([p[0] for p in parts]), one[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), one[1])


def test_two_processes_from_shards_equal_one_and_resume(shard_dir, tmp_path):
    from test_distributed import ROOT, torchrun
    from test_distributed import weights as saved_weights

    two = str(tmp_path / "two")
    common = ["--method", "supervised", "--dataset", "shards", "--data-path", os.path.join(shard_dir, "train.json"),
              "--test-path", os.path.join(shard_dir, "test.json"), "--unlabeled-path", os.path.join(shard_dir, "pool.json"),
              "--num-labeled", "9", "--model", "mlp", "--no-augment", "--steps", "6", "--eval-every", "3", "--lr", "0.05",
              "--no-progress", "--data-hp", "workers=1"]
    torchrun("-m", "mentor.cli", "train", *common, "--batch-size", "3", "--unlabeled-batch-size", "6", "--out", two)
    one = Trainer(shard_config(shard_dir, method="supervised", method_options={}, model="mlp", model_options={},
                               augment=False, batch_size=6, out=str(tmp_path / "one")))
    one.fit()
    for key, value in saved_weights(str(tmp_path / "one")).items():
        torch.testing.assert_close(saved_weights(two)[key], value, rtol=1e-5, atol=1e-6)
    summary = json.load(open(os.path.join(two, "summary.json")))  # the streamed test split, shared by the ranks
    assert summary["processes"] == 2 and summary["final_test_accuracy"] == pytest.approx(
        one.history[-1]["test_accuracy"], abs=1e-9)
    # FixMatch from shards, two processes, killed after step 4's checkpoint and resumed
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    worker = os.path.join(ROOT, "tests", "dist_worker.py")
    torchrun(worker, "--out", straight, "--shards", shard_dir)
    torchrun(worker, "--out", killed, "--shards", shard_dir, "--die-after", "7", killed=True)
    torchrun(worker, "--out", killed, "--shards", shard_dir, "--resume")
    for key, value in saved_weights(straight).items():
        assert torch.equal(saved_weights(killed)[key], value), key
    state = torch.load(os.path.join(killed, "checkpoint.pt"), weights_only=False)
    assert state["stream"]["unlabeled"]["position"] == 12 and state["world_size"] == 2
    # labelling a pool of shards: the processes share the label shards, and agree with one process
    from mentor.pseudo_labels import read_labels

    pool = os.path.join(shard_dir, "pool.json")
    assert main(["pseudo-label", two, "--data", pool, "--out", str(tmp_path / "l1"), "--shard-size", "40",
                 "--no-progress", "--device", "cpu"]) == 0
    torchrun("-m", "mentor.cli", "pseudo-label", two, "--data", pool, "--out", str(tmp_path / "l2"), "--shard-size", "40",
             "--no-progress", "--device", "cpu")
    l1, l2 = read_labels(str(tmp_path / "l1")), read_labels(str(tmp_path / "l2"))
    assert l2.manifest["complete"] and len(l2.argmax) == 90 and (l1.probs == l2.probs).all()


def test_eval_report_and_compare_on_a_run_from_shards(shard_dir, tmp_path, capsys):
    run = str(tmp_path / "run")
    Trainer(shard_config(shard_dir, out=run)).fit()
    assert main(["eval", run, "--device", "cpu"]) == 0
    assert '"test_accuracy"' in capsys.readouterr().out
    assert main(["report", run, "--out", str(tmp_path / "report.html")]) == 0
    assert os.path.exists(tmp_path / "report.html")
    train = os.path.join(shard_dir, "train.json")
    assert main(["compare", "--dataset", "shards", "--data-path", train, "--test-path",
                 os.path.join(shard_dir, "test.json"), "--out", str(tmp_path / "cmp")]) == 2
    assert "mentor compare scores every method" in capsys.readouterr().err


def test_noisy_student_rounds_from_shards_under_torchrun(shard_dir, tmp_path):
    from test_distributed import torchrun

    out = str(tmp_path / "ns")
    torchrun("-m", "mentor.cli", "noisy-student", "--dataset", "shards", "--data-path",
             os.path.join(shard_dir, "train.json"), "--test-path", os.path.join(shard_dir, "test.json"),
             "--unlabeled-path", os.path.join(shard_dir, "pool.json"), "--num-labeled", "9", "--model", "small_cnn",
             "--model-hp", "widths=4,8", "--steps", "4", "--eval-every", "2", "--batch-size", "3",
             "--unlabeled-batch-size", "6", "--rounds", "1", "--student-width", "1", "--data-hp", "workers=1",
             "--no-progress", "--out", out)
    rounds = json.load(open(os.path.join(out, "rounds.json")))["rounds"]
    assert len(rounds) == 2 and rounds[1]["pseudo_labeled"] > 0
    assert json.load(open(os.path.join(out, "round-1", "summary.json")))["processes"] == 2
    labels = json.load(open(os.path.join(out, "round-1", "labels", "manifest.json")))
    assert labels["complete"] and labels["num_examples"] == 150


def test_every_dataset_and_pool_gives_the_written_interface(shard_dir):
    """mentor.data.base: in memory or on disk, a dataset and its pools answer the same attributes
    and calls the trainer reads (no probing for what a kind lacks)."""
    from mentor.data import load_dataset
    from mentor.data.base import Dataset, Pool
    from mentor.data.pools import ArrayPool
    from mentor.train import prepare_data

    config = shard_config(shard_dir)
    for dataset in (load_dataset("digits"), prepare_data(config)[0]):
        assert isinstance(dataset, Dataset), type(dataset)
        _, split = prepare_data(config if dataset.streamed else TrainConfig(dataset="digits", num_labeled=20), dataset)
        for pool in (dataset.unlabeled_pool(split, "cpu"), dataset.test_pool("cpu")):
            assert isinstance(pool, Pool), type(pool)
            assert (pool.x is None) == pool.streamed and len(pool) > 0
            first = next(iter(pool.read_ahead([(0, 2)])))
            assert len(first) == 2
    assert isinstance(ArrayPool(np.zeros((3, 2))), Pool)
