"""Every option of every registered method has a declared range (or choices), checked before any
work: by the method's create(), by TrainConfig.validate (the command line and the estimator) and by
compare's METHOD:KEY=VALUE."""
import pytest

from mentor import SemiSupervisedClassifier
from mentor.compare.plan import parse_entry
from mentor.errors import ConfigError
from mentor.options import Choice, Range
from mentor.registry import METHODS
from mentor.train import TrainConfig


def outside(declared: Range, default):
    """Values just outside a declared range, each with why it is outside."""
    if declared.steps:
        return [(-1, "negative"), (1.5, "a fraction above 1")]
    values = []
    if declared.low is not None:
        values.append((declared.low if declared.low_open else declared.low - 0.5, "below"))
    if declared.high is not None:
        values.append((declared.high if declared.high_open else declared.high + 0.5, "above"))
    if declared.integer:
        values.append(((default if isinstance(default, int) else declared.low) + 0.5, "a fraction"))
    return values


CASES = [(name, key) for name in METHODS.names() for key in METHODS.get(name).hparam_defaults()]


@pytest.mark.parametrize("name", METHODS.names())
def test_every_option_is_declared(name):
    cls = METHODS.get(name)
    defaults, ranges = cls.hparam_defaults(), cls.declared_ranges()
    undeclared = [k for k, v in defaults.items()
                  if not isinstance(v, bool) and k not in ranges and k not in cls.unranged_options]
    assert undeclared == [], f"{name}: options without a declared range: {undeclared}"
    assert set(cls.unranged_options) <= set(defaults)
    for key, declared in ranges.items():
        if defaults[key] is not None:
            assert declared.admits(defaults[key]), f"{name} {key}: its default {defaults[key]!r} is outside"


@pytest.mark.parametrize("name,key", CASES)
def test_values_outside_the_declared_range_are_refused_by_name(name, key):
    cls = METHODS.get(name)
    declared, default = cls.declared_ranges().get(key), cls.hparam_defaults()[key]
    if declared is None:
        assert isinstance(default, bool) or key in cls.unranged_options
        return
    bad = [("no-such-choice", "not a choice")] if isinstance(declared, Choice) else outside(declared, default)
    assert bad
    for value, why in bad:
        with pytest.raises(ConfigError, match=rf"{key}={value!r}: takes"):
            cls.check_hparams({key: value})
    if isinstance(declared, Range):  # and inside it, the check passes (steps: a count and a fraction)
        inside = [0, 0.25, 3] if declared.steps else [default] if default is not None else []
        for value in inside:
            cls.check_hparams({key: value})


def test_the_issue_cases_are_refused_at_every_door():
    cases = [("fixmatch", "unlabeled_weight", -1), ("freematch", "fairness_weight", -1),
             ("crmatch", "rotation_weight", -1), ("simmatch", "proj_dim", 2.5),
             ("sequencematch", "target_temperature", 0), ("comatch", "contrast_threshold", 2)]
    for method, key, value in cases:
        with pytest.raises(ConfigError, match=rf"{key}={value!r}"):  # mentor train --hp, mentor.train(...)
            TrainConfig(method=method, method_options={key: value}).validate()
        with pytest.raises(ConfigError, match=rf"--methods {method}: {key}={value!r}: takes"):  # mentor compare
            parse_entry(f"{method}:{key}={value}")
    x = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.8]]
    with pytest.raises(ConfigError, match="unlabeled_weight=-1"):  # the estimator, before it trains
        SemiSupervisedClassifier(method="fixmatch", unlabeled_weight=-1, steps=2).fit(x, [0, 1, -1, -1])


def test_a_whole_float_of_an_int_option_is_taken_as_the_int():
    assert METHODS.get("simmatch").check_hparams({"proj_dim": 16.0}) == {"proj_dim": 16}


def test_every_baseline_option_is_declared_and_checked():
    from mentor.compare.baselines import BASELINES

    for name, baseline in BASELINES.items():
        for key, (default, declared) in baseline.options.items():
            if declared is None:
                assert isinstance(default, bool), (name, key)  # a switch: its type is its range
                with pytest.raises(ConfigError, match=f"{key}=3: takes true or false"):
                    parse_entry(f"{name}:{key}=3")
                continue
            assert declared.admits(default), (name, key)
            bad = [("no-such-choice", "")] if isinstance(declared, Choice) else outside(declared, default)
            for value, _ in bad:
                with pytest.raises(ConfigError, match=rf"--methods {name}: {key}={value!r}: takes"):
                    parse_entry(f"{name}:{key}={value}")
    assert parse_entry("random_forest:n_estimators=300").options == {"n_estimators": 300}
