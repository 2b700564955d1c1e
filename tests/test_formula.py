"""for_flops: reproduces TinyNet-A..E, lands within 1% and never above, covers 10M-4G, rejects bad input."""
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynet_zoo as tz
from tinynet_zoo.core.formula import MAX_BUDGET, MIN_BUDGET, default_points, leave_one_out, load_formula
from tinynet_zoo.errors import BudgetWarning


@pytest.mark.parametrize("letter", "abcde")
def test_reproduces_tinynets_from_their_budgets(letter):
    info = tz.model_info(f"tinynet_{letter}")
    twist = tz.for_flops(info.macs)
    assert abs(twist.r - info.twist.r) <= 0.02 and abs(twist.d - info.twist.d) <= 0.02
    assert abs(twist.resolution - info.resolution) <= 4
    assert 0.99 * info.macs <= twist.macs <= info.macs


def test_fifty_log_spaced_budgets_within_one_percent():
    for budget in np.geomspace(MIN_BUDGET, MAX_BUDGET, 50):
        twist = tz.for_flops(float(budget))
        assert 0.99 * budget <= twist.macs <= budget, budget


def test_no_jump_at_the_base():
    b0 = tz.model_info("efficientnet_b0").macs
    below, above = tz.for_flops(b0 - 1e5), tz.for_flops(b0 + 1e5)
    assert below.rules == "tinynet" and tz.for_flops(b0 * 1.05).rules == "efficientnet"
    for a, b in ((below.r, above.r), (below.d, above.d), (below.w, above.w)):
        assert abs(a - b) < 0.03
    assert abs(below.resolution - above.resolution) <= 4


def test_giant_formula_below_base_is_the_inverse_giant():
    tiny, giant = tz.for_flops(24e6), tz.for_flops(24e6, formula="giant")
    assert giant.rules == "efficientnet" and giant.r < tiny.r and giant.d < tiny.d
    assert math.isclose(math.log(giant.d) / math.log(1.2), math.log(giant.r) / math.log(1.15), abs_tol=0.05)


def test_create_and_info_for_uncatalogued_twist():
    twist = tz.for_flops("100M")
    model = tz.create(twist, num_classes=5)
    from tinynet_zoo.core.flops import count_params
    assert sum(p.numel() for p in model.parameters()) == count_params(twist.arch, num_classes=5)
    assert tz.model_info(twist).macs == twist.macs


@settings(max_examples=40, deadline=None)
@given(budget=st.floats(MIN_BUDGET, MAX_BUDGET))
def test_never_above_and_within_tolerance_or_warned(budget):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        twist = tz.for_flops(budget)
    assert twist.macs <= budget
    warned = any(issubclass(w.category, BudgetWarning) for w in caught)
    assert twist.macs >= 0.99 * budget or warned


@settings(max_examples=40, deadline=None)
@given(budget=st.floats(MIN_BUDGET, MAX_BUDGET), step=st.one_of(st.floats(1.0, 1.01), st.floats(1.0, 3.0)))
def test_monotone(budget, step):
    """A larger budget never gives fewer MACs, however close the two budgets are."""
    larger = min(budget * step, MAX_BUDGET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        assert tz.for_flops(larger).macs >= tz.for_flops(budget).macs


def test_monotone_on_a_dense_sweep():
    previous = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        for budget in np.geomspace(20e6, 22e6, 120):  # around a tall step of the MAC staircase
            macs = tz.for_flops(float(budget)).macs
            assert previous <= macs <= budget
            previous = macs


@pytest.mark.parametrize("budget, match", [
    (0, "positive, finite"), (-5e6, "positive, finite"), (math.nan, "positive, finite"), (math.inf, "positive"),
    ("lots", "cannot parse budget 'lots'"), ("12 parsecs", "cannot parse"), (True, "must be a number"),
    (5e6, r"outside the supported range 10M to 4G"), (5e9, "outside the supported range"),
])
def test_bad_budgets(budget, match):
    with pytest.raises(tz.BudgetError, match=match):
        tz.for_flops(budget)
    assert issubclass(tz.BudgetError, ValueError)


def test_bad_base_and_formula():
    with pytest.raises(tz.UnknownNameError, match="unknown base"):
        tz.for_flops(50e6, base="resnet18")
    with pytest.raises(tz.InvalidArgumentError, match="unknown formula .tinny.; did you mean .tiny."):
        tz.for_flops(50e6, formula="tinny")


def test_budget_spellings():
    assert tz.parse_budget("100M") == tz.parse_budget("100e6") == tz.parse_budget("0.1G") == 100e6
    assert tz.parse_budget("250k") == 250e3 and tz.parse_budget(" 2.5 GMACs ") == 2.5e9


def test_packaged_fit_is_the_refit_of_published_points():
    stored = load_formula("tiny")
    refit = tz.fit_formula(default_points(), kind="gpr", name="tiny")
    assert stored.points == refit.points
    for budget in np.geomspace(MIN_BUDGET, 385e6, 7):
        np.testing.assert_allclose(stored.predict(budget), refit.predict(budget), atol=1e-6)


def test_custom_formula_file_round_trip(tmp_path):
    linear = tz.fit_formula(default_points(), kind="linear")
    path = tmp_path / "my_formula.json"
    linear.save(path)
    assert json.loads(path.read_text())["kind"] == "linear"
    twist = tz.for_flops(60e6, formula=str(path))
    assert 0.99 * 60e6 <= twist.macs <= 60e6
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(tz.InvalidArgumentError, match="not a valid formula"):
        tz.for_flops(60e6, formula=str(tmp_path / "broken.json"))


@pytest.mark.slow
def test_leave_one_out_compares_gpr_and_linear():
    gpr, linear = leave_one_out(default_points(), "gpr"), leave_one_out(default_points(), "linear")
    assert len(gpr) == len(linear) == 6
    assert all(row["r_err"] >= 0 and row["d_err"] >= 0 for row in gpr + linear)
    with pytest.raises(tz.InvalidArgumentError, match="at least 3 points"):
        tz.fit_formula(default_points()[:2])
    with pytest.raises(tz.InvalidArgumentError, match="unknown formula kind 'spline'; did you mean 'linear'"):
        tz.fit_formula(default_points(), kind="spline")
