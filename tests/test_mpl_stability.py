"""The MPL term must not knock the teacher over: trained a few hundred steps on a small real
problem (digits, 50 labels, an unlabeled batch of 448 as in the default command), the
teacher with the default feedback stays within noise of the same teacher without feedback
(feedback=none). The check has teeth: the same feedback scaled by 100 drives the teacher
to chance on this problem."""
import pytest

from mentor.train import TrainConfig, train


def teacher_accuracy(**method_options):
    summary = train(TrainConfig(method="meta_pseudo_labels", dataset="digits", num_labeled=50, steps=300,
                                eval_every=0, progress=False, seed=0, device="cpu", method_options=method_options))
    return summary["final_teacher_test_accuracy"], summary["final_test_accuracy"]


@pytest.fixture(scope="module")
def control():
    return teacher_accuracy(feedback="none")


def test_default_feedback_keeps_the_teacher_as_good_as_no_feedback(control):
    teacher, student = teacher_accuracy()
    assert control[0] > 0.6  # the control learned: 10 classes, chance is 0.1
    assert teacher >= control[0] - 0.02  # 0.02 = 9 of 450 test digits
    assert student >= control[1] - 0.02


def test_a_feedback_too_strong_is_caught_by_the_same_check(control):
    teacher, _ = teacher_accuracy(feedback_weight=100.0)
    assert teacher < control[0] - 0.3
