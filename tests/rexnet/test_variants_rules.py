"""Variants from schema-3 findings: a rule is applied only where the findings decided it; an undecided rule keeps
ReXNet's choice, says so on stderr (one line per rule) and records its estimate, CI and probability of being best
in the variant's provenance."""

import json

import pytest
from click.testing import CliRunner

from rexnet import RexnetError, load_arch
from rexnet.cli import main
from rexnet.variants import read_rules


def nonlinearity_rule(decided: bool, prob: float = 0.97, vs_ci=(0.019, 0.034)) -> dict:
    return {
        "rule": "nonlinearity",
        "form": "choice",
        "measure": "bound_relative_effective_rank",
        "baseline": "silu",
        "choice": "gelu" if decided else None,
        "best": "gelu",
        "decided": decided,
        "reason": "P(best) 0.97 >= 0.8 and a material lead" if decided else "its lead over relu6 is immaterial",
        "prob_best": prob,
        "options": [
            {"option": "gelu", "value": 0.597, "ci": [0.592, 0.602], "n": 2481, "prob_best": prob},
            {"option": "relu6", "value": 0.584, "ci": [0.579, 0.589], "n": 2549, "prob_best": 1 - prob},
        ],
        "lead": {"over": "relu6", "value": 0.013, "ci": [0.006, 0.020], "n": 2481, "material": "immaterial"},
        "vs_baseline": {"baseline": "silu", "value": 0.026, "ci": list(vs_ci), "n": 2421},
        "rows": {"source": "rule study part 'nonlinearity'", "n_networks": 32500},
    }


def expansion_rule(decided: bool) -> dict:
    per_tau = {
        tau: {"form": "comparison", "choice": 4 if decided else None, "best": 4, "decided": decided, "reason": "r"}
        for tau in ("0.9", "0.95")
    }
    return {
        "rule": "expansion",
        "form": "comparison",
        "measure": "bound_relative_effective_rank",
        "baseline": 6,
        **per_tau["0.9"],
        "per_tau": per_tau,
        "comparison": {
            "options": [
                {"option": 4, "value": 0.89, "ci": [0.88, 0.90], "n": 997, "prob_best": 0.9 if decided else 0.5}
            ],
            "prob_best": 0.9 if decided else 0.5,
        },
        "threshold": {"by_measure": {}},
        "rows": {"source": "rule study part 'expansion'", "n_networks": 5000},
    }


def schedule_rule(decided: bool) -> dict:
    return {
        "rule": "schedule",
        "form": "comparison",
        "measure": "bound_relative_effective_rank",
        "baseline": "linear",
        "choice": "stagewise" if decided else None,
        "best": None,
        "decided": decided,
        "reason": "stack - block is material" if decided else "undecided against the margin",
        "value": -0.06 if decided else 0.021,
        "ci": [-0.065, -0.055] if decided else [0.013, 0.028],
        "rows": {"source": "rule study part 'schedule'", "n_networks": 2400},
    }


def findings_v3(nl: dict, ex: dict, sc: dict) -> dict:
    return {
        "schema_version": 3,
        "created": "2026-12-01T00:00:00+0000",
        "command": "python synthetic.py",
        "settings": {"design_measure": "bound_relative_effective_rank"},
        "recommendations": {
            "recommended_nonlinearity": nl["choice"],
            "max_expansion": ex["choice"],
            "max_expansion_per_layer": {"0.9": None, "0.95": None},
            "gradual_expansion_beats_single": None,
            "rules": {"nonlinearity": nl, "expansion": ex, "schedule": sc},
        },
    }


def test_decided_rules_are_applied_with_their_evidence():
    rules = read_rules(findings_v3(nonlinearity_rule(True), expansion_rule(True), schedule_rule(True)), tau=0.95)
    assert (rules.nonlinearity, rules.max_expansion, rules.schedule) == ("gelu", 4, "stagewise")
    assert rules.undecided == ()
    ev = rules.evidence["nonlinearity"]["finding"]
    assert ev["prob_best"] == 0.97 and ev["ci"] == [0.592, 0.602] and ev["estimate"] == 0.597
    assert ev["n_networks"] == 32500 and ev["decided"] is True


@pytest.mark.parametrize(
    "nl, expected",
    [
        (nonlinearity_rule(False), "its lead over relu6 is immaterial"),
        (nonlinearity_rule(True, prob=0.6), "P(best) 0.60 < 0.8"),  # marked decided, yet below the threshold
        (nonlinearity_rule(True, vs_ci=(-0.004, 0.03)), "spans 0"),  # its CI spans ReXNet's choice
    ],
)
def test_an_undecided_rule_keeps_rexnets_choice_and_says_why(nl, expected):
    rules = read_rules(findings_v3(nl, expansion_rule(False), schedule_rule(False)))
    assert (rules.nonlinearity, rules.max_expansion, rules.schedule) == ("silu", 6, "linear")
    assert len(rules.undecided) == 3 and expected in rules.undecided[0]
    assert rules.undecided[0].startswith("rule nonlinearity is not decided") and "silu kept" in rules.undecided[0]


def test_rexnet_build_keeps_rexnets_choice_for_an_undecided_rule(tmp_path):
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps(findings_v3(nonlinearity_rule(False), expansion_rule(True), schedule_rule(False))))
    out = tmp_path / "variant.json"
    args = ["build", "--findings", str(findings), "--macs", "12.9M", "--img-size", "32", "--small-input", "s16"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2  # one line per undecided rule: nonlinearity and schedule
    assert "rule nonlinearity is not decided" in warnings[0] and "ReXNet's silu kept" in warnings[0]
    assert "rule schedule is not decided" in warnings[1]
    arch = load_arch(out)
    expanding = [b for b in arch.blocks if b.expansion != 1]
    assert expanding and all(b.act == "silu" for b in expanding)  # ReXNet's choice
    assert max(b.expansion for b in expanding) == 4  # the decided rule is applied
    prov = arch.provenance
    nl = prov["choices"]["nonlinearity"]
    assert nl["value"] == "silu" and nl["finding"]["decided"] is False and nl["finding"]["prob_best"] == 0.97
    assert nl["finding"]["ci"] == [0.592, 0.602] and nl["finding"]["best"] == "gelu"
    assert len(prov["undecided"]) == 2 and prov["findings"]["schema_version"] == 3


def test_bad_schema_3_rules_are_refused():
    bad = findings_v3(nonlinearity_rule(True), expansion_rule(True), schedule_rule(True))
    bad["recommendations"]["rules"]["nonlinearity"]["choice"] = "swishy"
    with pytest.raises(RexnetError, match="'swishy' is not one of"):
        read_rules(bad)
    with pytest.raises(RexnetError, match="no rules.expansion.per_tau for tau 0.8"):
        read_rules(findings_v3(nonlinearity_rule(True), expansion_rule(True), schedule_rule(True)), tau=0.8)
    missing = findings_v3(nonlinearity_rule(True), expansion_rule(True), schedule_rule(True))
    del missing["recommendations"]["rules"]["schedule"]
    with pytest.raises(RexnetError, match="missing key 'schedule'"):
        read_rules(missing)
