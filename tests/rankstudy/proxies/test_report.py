"""The report's statistics on tables with known answers (no networks)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sstats

from rankstudy.proxies import report
from rankstudy.proxies.spaces import ACCURACY_COLUMNS


def table(n=200, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    params = rng.normal(size=n)
    extra = rng.normal(size=n)
    acc = params + extra  # accuracy = size + something size does not explain
    t = pd.DataFrame(
        {
            "arch_id": np.arange(n),
            "params": params,
            "rank.perfect.mean": acc,
            "rank.extra.mean": extra,
            "reverse": -acc,
            "noise": rng.normal(size=n),
        }
    )
    for col in ACCURACY_COLUMNS:
        t[col] = acc
    t.loc[::7, "noise"] = -math.inf  # −inf ranks lowest, NaN is left out
    t.loc[::11, "reverse"] = math.nan
    return t


PROXIES = ["params", "rank.perfect.mean", "rank.extra.mean", "reverse", "noise"]


def test_correlations_known_answers():
    t = table()
    c = report.correlations(t, PROXIES, columns=("cifar10_200ep",), n_resamples=200).set_index("proxy")
    assert c.loc["rank.perfect.mean", "rho"] == pytest.approx(1.0)
    assert c.loc["rank.perfect.mean", "tau"] == pytest.approx(1.0)
    assert c.loc["rank.perfect.mean", "top10_precision"] == 1.0
    assert c.loc["reverse", "rho"] == pytest.approx(-1.0) and c.loc["reverse", "n"] == 200 - len(range(0, 200, 11))
    lo, hi = c.loc["params", "rho_ci"]
    assert lo < c.loc["params", "rho"] < hi
    # the part of accuracy that #params does not explain: partial rho high, and it beats #params
    assert c.loc["rank.extra.mean", "partial_rho"] > 0.8
    noise_rho = sstats.spearmanr(np.where(np.isinf(t["noise"]), -1e9, t["noise"]), t["cifar10_200ep"]).statistic
    assert c.loc["noise", "rho"] == pytest.approx(noise_rho)
    assert c.loc["rank.perfect.mean", "rho_minus_params_ci"][0] > 0
    verdict = report.verdicts(c.reset_index())["cifar10_200ep"]
    assert "best proxy rank.perfect.mean" in verdict and "beat #params" in verdict


def test_combination_is_fitted_on_one_half_and_scored_on_the_other():
    combos = report.combinations(table(), PROXIES, columns=("cifar10_200ep",), n_resamples=200)
    (c,) = combos
    assert c["n_fit"] + c["n_test"] == 200 and c["n_fit"] == 100
    assert c["measure"] in ("rank.perfect.mean", "rank.extra.mean")
    assert c["rho"] > c["params_rho"] and c["difference_ci"][0] > 0
