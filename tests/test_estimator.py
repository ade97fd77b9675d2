"""SemiSupervisedClassifier: scikit-learn's own estimator checks, Pipeline, GridSearchCV, y == -1."""
import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mentor import SemiSupervisedClassifier

# Checks expected to fail, and why (each is a property of the semi-supervised convention):
EXPECTED_FAILURES = {
    # -1 marks unlabeled rows (scikit-learn's convention for LabelSpreading and
    # SelfTrainingClassifier); this check trains on the labels {-1, 1}, so one class is left.
    "check_classifiers_classes": "-1 is the unlabeled marker, and the check uses it as a class label",
}


def small(**options):
    return SemiSupervisedClassifier(steps=150, unlabeled_batch_size=64, **options)


@parametrize_with_checks([small()], expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def blobs_with_unlabeled(seed=0, n=300, labeled=30):
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n, centers=3, cluster_std=1.0, random_state=seed)  # logistic regression: 0.93
    names = np.array(["ant", "bee", "cat"])[y]
    y_semi = names.astype(object)
    y_semi[np.random.default_rng(seed).permutation(n)[labeled:]] = -1
    return x * 100 + 7, names, y_semi


def test_string_labels_unlabeled_rows_and_method_options():
    x, truth, y = blobs_with_unlabeled()
    clf = small(method="fixmatch", threshold=0.8)
    assert clf.get_params()["threshold"] == 0.8
    clf.fit(x, y)
    assert clf.classes_.tolist() == ["ant", "bee", "cat"]
    assert clf.score(x, truth) > 0.85  # unscaled features: fit standardises them itself
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(x), clf.predict_proba(x))
    with pytest.raises(ValueError, match="no labeled row"):
        small().fit(x, np.full(len(x), -1))
    with pytest.raises(Exception, match="has no hyper-parameter 'thresold'"):
        small(thresold=0.5).fit(x, y)


def test_pipeline_and_grid_search_over_a_method_option():
    x, truth, y = blobs_with_unlabeled(seed=1)
    pipe = make_pipeline(StandardScaler(), small(method="fixmatch"))
    search = GridSearchCV(pipe, {"semisupervisedclassifier__threshold": [0.7, 0.95]}, cv=2)
    labeled = np.array([v != -1 for v in y])
    search.fit(x[labeled], y[labeled].astype(str))
    assert search.best_params_["semisupervisedclassifier__threshold"] in (0.7, 0.95)
    assert search.score(x, truth) > 0.85


def test_score_counts_labeled_rows_only_so_grid_search_scores_semi_supervised_folds():
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    x, truth, y = blobs_with_unlabeled(seed=2)
    labeled = np.array([v != -1 for v in y])
    clf = small(method="fixmatch").fit(x, y)
    assert clf.score(x, y) == pytest.approx(np.mean(clf.predict(x[labeled]) == y[labeled]))
    assert clf.score(x, truth) == pytest.approx(np.mean(clf.predict(x) == truth))
    with pytest.raises(ValueError, match="no labeled row to score"):
        clf.score(x, np.full(len(x), -1))
    # GridSearchCV on the semi-supervised rows themselves: each fold is scored on its labeled rows
    folds = KFold(2, shuffle=True, random_state=0)
    search = GridSearchCV(small(method="fixmatch"), {"threshold": [0.7, 0.95]}, cv=folds).fit(x, y)
    by_hand = []
    for train, test in folds.split(x):
        model = clone(small(method="fixmatch", threshold=search.best_params_["threshold"])).fit(x[train], y[train])
        keep = labeled[test]
        by_hand.append(np.mean(model.predict(x[test][keep]) == y[test][keep]))
    assert search.best_score_ == pytest.approx(np.mean(by_hand))
    assert search.best_score_ > 0.8  # with the unlabeled rows counted as wrong it was ~0.1


def test_a_dataframe_with_a_label_column_is_a_door():
    pd = pytest.importorskip("pandas")
    x, truth, y = blobs_with_unlabeled(seed=3)
    frame = pd.DataFrame(x, columns=["width", "height"])
    frame.insert(1, "species", [v if v != -1 else None for v in y])
    frame.loc[frame.index[:5], "species"] = ""  # empty text cells are unlabeled too, as with --target
    clf = small(method="supervised").fit(frame, label="species")
    assert clf.classes_.tolist() == ["ant", "bee", "cat"] and clf.n_features_in_ == 2
    assert list(clf.feature_names_in_) == ["width", "height"]
    labeled = frame["species"].fillna("").str.len() > 0
    assert clf.score(frame) == pytest.approx(np.mean(clf.predict(frame)[labeled] == frame["species"][labeled]))
    assert np.mean(clf.predict(frame.drop(columns="species")) == truth) > 0.85
    with pytest.raises(ValueError, match="'kind' is not a column of X; its columns: width, species, height"):
        small().fit(frame, label="kind")
    with pytest.raises(ValueError, match="give y or label=, not both"):
        small().fit(frame, y, label="species")
    with pytest.raises(ValueError, match="feature column\\(s\\) colour are not numeric"):
        small().fit(frame.assign(colour="red"), label="species")
