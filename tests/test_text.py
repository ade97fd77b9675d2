"""--dataset text: sentences embedded by the bundled all-MiniLM-L6-v2, cached, trained on, predicted."""
import numpy as np
import pytest

import mentor
from mentor.data.sources import text
from mentor.errors import DataError
from mentor.train import Trainer

from conftest import tiny_config

GOOD = ["a wonderful , moving film", "great acting and a clever story", "funny , warm and beautifully made",
        "a delight from start to finish", "brilliant and touching", "i loved every minute of it"]
BAD = ["a dull , lifeless mess", "boring and far too long", "clumsy , tedious and badly acted",
       "a waste of two hours", "awful and forgettable", "i hated every minute of it"]


@pytest.fixture
def reviews(tmp_path, monkeypatch):
    monkeypatch.setenv("MENTOR_CACHE", str(tmp_path / "cache"))
    lines = [f"{'pos' if i % 3 == 0 else ''}\t{s}" for i, s in enumerate(GOOD)]
    lines += [f"{'neg' if i % 3 == 0 else ''}\t{s}" for i, s in enumerate(BAD)]
    lines += ["pos\ta lovely , clever film", "neg\ta tedious , boring film", "pos\twarm and funny", "neg\tdull and awful"]
    path = tmp_path / "reviews.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_embeds_once_trains_and_predicts(reviews, tmp_path, monkeypatch):
    config = tiny_config("fixmatch", out=str(tmp_path / "run"), dataset="text", data_path=str(reviews), num_labeled=0,
                         dataset_options={"test_fraction": 0.5}, steps=30, eval_every=10, strong_noise=0.3)
    trainer = Trainer(config)
    ds = trainer.dataset
    assert ds.input_shape == (384,) and ds.class_names == ["neg", "pos"]
    assert len(ds.x_unlabeled) == 8 and len(ds.x_train) + len(ds.x_test) == 8
    fitted = np.concatenate([ds.x_train, ds.x_unlabeled])  # standardised on training and unlabeled rows
    assert np.allclose(fitted.mean(axis=0), 0, atol=1e-4) and np.isfinite(ds.x_test).all()
    trainer.fit()
    calls = []
    monkeypatch.setattr(text, "sentence_model", lambda: calls.append(1) or pytest.fail("embedded twice"))
    again = Trainer(config.__class__(**{**config.to_dict(), "out": None}))  # the cache answers
    np.testing.assert_array_equal(again.dataset.x_train, ds.x_train)
    monkeypatch.undo()
    model = mentor.load_model(str(tmp_path / "run"))
    sentences = tmp_path / "new.txt"
    sentences.write_text("a brilliant , lovely film\nboring , dull and awful\n")
    from mentor.inference import read_inputs

    x = read_inputs(str(sentences), model.spec)
    assert x.shape == (2, 384) and set(model.predict(x).tolist()) <= {"pos", "neg"}
    assert np.allclose(model.predict_proba(x).sum(axis=1), 1)


def test_real_embeddings_separate_sentiment(reviews):
    """The bundled model is real: the labeled good and bad sentences lie apart."""
    vectors = text.embed(GOOD + BAD)
    good, bad = vectors[:6], vectors[6:]
    within = (good @ good.T).mean() + (bad @ bad.T).mean()
    across = 2 * (good @ bad.T).mean()
    assert vectors.shape == (12, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert within > across


@pytest.mark.parametrize("content, message", [
    ("pos a film without a tab\n", "line 1: no tab"),
    ("pos\t\n", "line 1: the sentence after the tab is empty"),
    ("\tonly unlabeled\n\tlines here\n", "no row has a label"),
])
def test_bad_text_files(tmp_path, content, message):
    path = tmp_path / "t.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        Trainer(tiny_config("supervised", dataset="text", data_path=str(path), num_labeled=0))
    with pytest.raises(DataError, match="text file not found"):
        Trainer(tiny_config("supervised", dataset="text", data_path=str(tmp_path / "none.tsv"), num_labeled=0))
    with pytest.raises(DataError, match="has no option 'target'; its options: test_path"):
        Trainer(tiny_config("supervised", dataset="text", data_path=str(path), num_labeled=0,
                            dataset_options={"target": "x"}))
