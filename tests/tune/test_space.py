"""The search space: specs, draws (Kolmogorov-Smirnov and chi-square against the uniform law
in each kind's sampling coordinate), narrowing against hand-computed ranges, bad specs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.tune.space import Param, SpaceError, load_space_file, narrow, parse_params, parse_spec

N = 2000
# Kolmogorov's limit law: P(sqrt(n) D > c) = alpha at c = sqrt(-ln(alpha / 2) / 2); alpha 0.001
KS_CRIT = math.sqrt(-math.log(0.001 / 2) / 2) / math.sqrt(N)  # 0.0437


def ks_uniform(u) -> float:
    """The one-sample Kolmogorov-Smirnov statistic of ``u`` against U(0, 1):
    D = max_i max(i/n - u_(i), u_(i) - (i-1)/n)."""
    u = np.sort(np.asarray(u, dtype=np.float64))
    n = len(u)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - u), np.max(u - (i - 1) / n)))


def chi_square(counts, expected) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    return float(np.sum((counts - expected) ** 2 / expected))


def draws(optuna, p: Param, n: int = N, seed: int = 0) -> list:
    """n values of ``p`` drawn by Optuna's seeded random sampler through cnnlab's suggest."""
    from cnnlab.tune.space import suggest

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(suggest(trial, p))
        study.tell(trial, 0.0)
    return out


def test_ks_statistic_matches_a_hand_computed_case():
    # u = (0.1, 0.5, 0.9): i/n - u = (0.233, 0.167, 0.1); u - (i-1)/n = (0.1, 0.167, 0.233)
    assert ks_uniform([0.9, 0.1, 0.5]) == pytest.approx(0.7 / 3)


def test_log_uniform_draws_are_uniform_in_log10(optuna):
    p = parse_spec("lr", "log:1e-4:1e-1")
    v = np.array(draws(optuna, p))
    assert v.min() >= 1e-4 and v.max() <= 1e-1
    d = ks_uniform((np.log10(v) + 4) / 3)
    assert d < KS_CRIT, d
    # the test can fail: the same values are far from uniform on a linear scale
    assert ks_uniform((v - 1e-4) / (1e-1 - 1e-4)) > 10 * KS_CRIT


def test_one_minus_log_draws_are_uniform_in_log10_of_one_minus_beta(optuna):
    p = parse_spec("beta", "one-minus-log:0.9:0.999")
    beta = np.array(draws(optuna, p))
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    t = np.log10(1 - beta)  # in [-3, -1]
    assert ks_uniform((t + 3) / 2) < KS_CRIT
    # the course's point: 0.9-0.99 and 0.99-0.999 get the same share of the trials
    share = np.mean(beta < 0.99)
    assert abs(share - 0.5) < 5 * math.sqrt(0.25 / N)
    # and a beta drawn uniformly would not pass
    assert ks_uniform((beta - 0.9) / 0.099) > 10 * KS_CRIT


def test_uniform_draws(optuna):
    v = np.array(draws(optuna, parse_spec("dropout", "uniform:0:0.5")))
    assert ks_uniform(v / 0.5) < KS_CRIT


def test_choices_are_equally_likely(optuna):
    p = parse_spec("batch_size", "choice:32,64,128")
    assert p.choices == (32, 64, 128)
    v = draws(optuna, p)
    counts = [v.count(c) for c in p.choices]
    assert sum(counts) == N
    # chi-square, 2 degrees of freedom: P(X > x) = exp(-x / 2), so x = -2 ln(0.001) = 13.8
    assert chi_square(counts, N / 3) < -2 * math.log(0.001)


def test_ints_cover_the_range_equally(optuna):
    v = draws(optuna, parse_spec("units", "int:1:6"))
    assert all(isinstance(x, int) for x in v)
    counts = [v.count(k) for k in range(1, 7)]
    assert sum(counts) == N
    assert chi_square(counts, N / 6) < 20.515  # chi-square table: 5 dof, alpha 0.001


def test_int_log_draws_favour_small_values_as_a_log_scale_does(optuna):
    v = np.array(draws(optuna, parse_spec("batch_size", "int-log:16:256")))
    assert v.min() >= 16 and v.max() <= 256
    # log-uniform on [15.5, 256.5] then rounded: P(v <= 63) = ln(63.5/15.5) / ln(256.5/15.5)
    expected = math.log(63.5 / 15.5) / math.log(256.5 / 15.5)
    assert abs(np.mean(v <= 63) - expected) < 5 * math.sqrt(0.25 / N)


def test_spec_round_trip_and_names():
    for text in ("log:0.0001:0.1", "uniform:0:0.5", "int:32:256", "int-log:16:256",
                 "choice:adam,sgd,momentum", "one-minus-log:0.9:0.999"):
        p = parse_spec("x", text)
        assert parse_spec("x", p.spec) == p
    assert parse_spec("batch-size", "int:1:2").name == "batch_size"
    assert parse_spec("augment", "choice:true,false").choices == (True, False)
    assert parse_spec("lr", "log:1e-4:1e-1").optuna_name == "lr"
    assert parse_spec("beta", "one-minus-log:0.9:0.99").optuna_name == "1-beta"
    params = parse_params(["lr=log:1e-4:1e-1", "bs=choice:32,64"])
    assert [p.name for p in params] == ["lr", "bs"]


@pytest.mark.parametrize("name, spec, match", [
    ("lr", "log:0:1", r"parameter 'lr'.*log range needs LOW > 0"),
    ("lr", "log:1e-1:1e-4", r"parameter 'lr'.*needs LOW < HIGH"),
    ("lr", "normal:0:1", r"parameter 'lr'.*KIND one of log, uniform"),
    ("lr", "log:1e-4", r"parameter 'lr'.*needs two bounds"),
    ("lr", "log:a:1", r"parameter 'lr': low bound 'a' is not a number"),
    ("lr", "log:1e-4:inf", r"parameter 'lr': high bound 'inf' is not a finite number"),
    ("units", "int:1.5:3", r"parameter 'units'.*int bounds are integers"),
    ("beta", "one-minus-log:0.9:1", r"parameter 'beta'.*0 <= LOW < HIGH < 1"),
    ("bs", "choice:32,,64", r"parameter 'bs'.*empty choice"),
    ("bs", "choice:32,32", r"parameter 'bs'.*lists a choice twice"),
    ("bs", 32, r"parameter 'bs': the spec must be text"),
    ("1x", "log:1:2", r"parameter '1x': a name is a cnnlab train option"),
])
def test_bad_specs_name_the_parameter(name, spec, match):
    with pytest.raises(SpaceError, match=match):
        parse_spec(name, spec)


def test_bad_param_items():
    with pytest.raises(SpaceError, match=r"--param 'lr' is not NAME=SPEC"):
        parse_params(["lr"])
    with pytest.raises(SpaceError, match=r"parameter 'lr' is given twice"):
        parse_params(["lr=log:1e-4:1e-1", "lr=uniform:0:1"])


def test_space_file(tmp_path):
    f = tmp_path / "space.toml"
    f.write_text('[params]\nlr = "log:1e-4:1e-1"\nbatch_size = [32, 64]\n'
                 'beta = "one-minus-log:0.9:0.999"\n\n[fixed]\nepochs = 2\n')
    params, fixed = load_space_file(f)
    assert [(p.name, p.kind) for p in params] == [("lr", "log"), ("batch_size", "choice"),
                                                   ("beta", "one-minus-log")]
    assert params[1].choices == (32, 64)
    assert fixed == {"epochs": 2}
    f.write_text('[params]\nlr = "log:1e-4"\n')
    with pytest.raises(SpaceError, match=r"parameter 'lr'.*needs two bounds"):
        load_space_file(f)
    f.write_text('[parms]\nlr = "log:1e-4:1"\n')
    with pytest.raises(SpaceError, match=r"unknown table\(s\) parms"):
        load_space_file(f)
    f.write_text('[params\n')
    with pytest.raises(SpaceError, match=r"not valid TOML"):
        load_space_file(f)


def test_narrow_log_range_by_hand():
    p = parse_spec("lr", "log:1e-5:1")
    # kept 1e-3 and 1e-2: t in [-3, -2], span 1; margin 0.1 * max(1, 0.1 * 5) = 0.1
    # = [0.000794328, 0.0125893], rounded outwards to 3 significant digits
    q = narrow(p, [1e-3, 1e-2], p)
    assert (q.low, q.high) == (0.000794, 0.0126)
    # one kept value: the margin is a tenth of a tenth of the current range in t (5 decades)
    q = narrow(p, [1e-3], p)  # [10^-3.05, 10^-2.95] = [0.000891251, 0.00112202]
    assert (q.low, q.high) == (0.000891, 0.00113)
    # never outside the original range
    # span log10(2) = 0.301, margin 0.1 * max(0.301, 0.5) = 0.05: high 2e-5 * 10^0.05 =
    # 2.2440e-05 (rounded up: 2.25e-05); low 10^-5.05 is clipped to the original 1e-5
    q = narrow(p, [1e-5, 2e-5], p)
    assert (q.low, q.high) == (1e-5, 2.25e-5)


def test_narrow_one_minus_log_by_hand():
    p = parse_spec("beta", "one-minus-log:0.9:0.9999")  # t = log10(1 - beta) in [-4, -1]
    # t in [-3, -2], margin 0.1 * max(1, 0.3): 1 - v in [0.000794328, 0.0125893], rounded out
    q = narrow(p, [0.99, 0.999], p)
    assert (q.low, q.high) == pytest.approx((1 - 0.0126, 1 - 0.000794), abs=1e-15)
    assert q.kind == "one-minus-log"


def test_narrow_ints_and_uniform_by_hand():
    p = parse_spec("units", "int:1:1000")
    q = narrow(p, [100, 120], p)  # span 20, margin 0.1 * max(20, 99.9) = 9.99
    assert (q.low, q.high) == (90, 130)
    u = parse_spec("dropout", "uniform:0:0.5")
    q = narrow(u, [0.2, 0.3], u)  # margin 0.1 * max(0.1, 0.05) = 0.01
    assert (q.low, q.high) == pytest.approx((0.19, 0.31))
    c = parse_spec("bs", "choice:16,32")
    assert narrow(c, [16], c) == c
