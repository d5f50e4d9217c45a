"""Networks at a MACs budget (bisection on width) and variants built from findings files."""

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from rexnet import RexnetError, create_model, load_arch, rexnet_v1_arch, save_arch
from rexnet.arch import STAGES, format_block_table
from rexnet.baseline import mobilenetv2_arch
from rexnet.cli import main
from rexnet.small_input import small_input_variant
from rexnet.summary import model_costs
from rexnet.variants import from_findings, match_macs, read_rules, variant_arch


def independent_macs(arch, img_size, small_input, in_chans):
    small, stem_stride = small_input_variant(arch, small_input)
    return model_costs(small, img_size, in_chans=in_chans, stem_stride=stem_stride)[1]


@pytest.mark.parametrize(
    "family, target, img_size, small_input, in_chans",
    [
        (rexnet_v1_arch, 12_904_264, 32, "s16", 1),  # exactly ReXNet-0.5×: reported as 0.5, not 0.4999…
        (rexnet_v1_arch, 250e6, 224, "off", 3),
    ],
)
def test_match_macs_hits_budget_within_2_percent(family, target, img_size, small_input, in_chans):
    target = int(target)
    mult, arch, macs = match_macs(family, target, img_size=img_size, small_input=small_input, in_chans=in_chans)
    assert arch == family(mult)
    assert macs == independent_macs(family(mult), img_size, small_input, in_chans)
    assert abs(macs - target) <= 0.02 * target
    if target == independent_macs(family(0.5), img_size, small_input, in_chans):
        assert (mult, macs) == (0.5, target)


@pytest.mark.parametrize(
    "target, message", [(1e3, "above the budget"), (1e12, "below the budget"), (0, "not positive")]
)
def test_match_macs_rejects_unreachable_budgets(target, message):
    with pytest.raises(RexnetError, match=message):
        match_macs(rexnet_v1_arch, int(target), img_size=32)


def test_match_macs_rejects_a_budget_between_two_steps():
    # MobileNetV2 channels are multiples of 8: at 32×32 no width costs 5.00M MACs ±1% (4.79M, then 5.16M).
    with pytest.raises(RexnetError, match="no multiplier gives MACs within 1%"):
        match_macs(mobilenetv2_arch, 5_000_000, img_size=32, rel_tol=0.01, lo=0.8, hi=0.87)


# --- variants from findings ------------------------------------------------------------------------------


def synthetic_findings(nonlinearity="gelu", cap=8.5, status="crossed", gradual=True, version=1) -> dict:
    """Returns a minimal schema-1 findings dict (docs/findings_schema.md) with the given recommendations."""
    return {
        "schema_version": version,
        "created": "2026-01-02T03:04:05+0000",
        "command": "python synthetic.py",
        "settings": {"design_measure": "rank_rtol_1e-2"},
        "recommendations": {
            "recommended_nonlinearity": nonlinearity,
            "max_expansion_per_layer": {"0.9": cap, "0.95": 1.5},
            "gradual_expansion_beats_single": gradual,
            "basis": {
                "recommended_nonlinearity": {
                    "tied_with": ["relu"],
                    "by_measure": {
                        "rank_rtol_1e-2": {"means": {nonlinearity: {"value": 0.93, "ci": [0.91, 0.95], "n": 60}}}
                    },
                },
                "max_expansion_per_layer": {
                    "measure": "rank_rtol_1e-2",
                    "nonlinearity": nonlinearity,
                    "per_tau": {
                        "0.9": {"status": status, "source": "fit"},
                        "0.95": {"status": "crossed", "source": "fit"},
                    },
                },
                "gradual_expansion_beats_single": {"measure": "rank_rtol_1e-2", "difference": 0.15, "ci": [0.13, 0.17]},
            },
        },
    }


def expanding(arch):
    return [b for b in arch.blocks if b.expansion != 1]


@pytest.mark.parametrize("name", ["gelu", "mish", "tanh"])
def test_nonlinearity_follows_the_findings(name):
    arch = variant_arch(read_rules(synthetic_findings(nonlinearity=name)), 0.5)
    assert {b.act for b in expanding(arch)} == {name} and arch.penultimate_act == name
    assert {b.dw_act for b in arch.blocks} == {"relu6"} and arch.stem_act == "silu"  # not expanding 1×1 convs
    choice = arch.provenance["choices"]["nonlinearity"]
    assert choice["finding"]["key"] == "recommendations.recommended_nonlinearity"
    assert choice["finding"]["value"] == name and choice["finding"]["ci"] == [0.91, 0.95]


@pytest.mark.parametrize(
    "cap, status, expected",
    [(3.7, "crossed", 3), (5.0, "crossed", 5), (8.5, "crossed", 6), (20.0, "above_range", 6), (4.0, "above_range", 6)],
)
def test_expansion_cap_follows_the_findings(cap, status, expected):
    arch = variant_arch(read_rules(synthetic_findings(cap=cap, status=status)), 0.5)
    assert {b.expansion for b in expanding(arch)} == {expected}
    assert arch.blocks[0].expansion == 1  # ReXNet's first block does not expand
    assert arch.provenance["choices"]["expansion"]["finding"]["status"] == status


def test_tau_selects_the_cap_and_below_range_is_refused():
    assert read_rules(synthetic_findings(), tau=0.95).max_expansion == 1
    with pytest.raises(RexnetError, match="no expansion ratio keeps the rank >= 0.9.*lower --tau"):
        read_rules(synthetic_findings(cap=None, status="below_range"))
    with pytest.raises(RexnetError, match="no recommendations.max_expansion_per_layer for tau 0.8"):
        read_rules(synthetic_findings(), tau=0.8)


def test_schedule_follows_the_findings():
    linear = variant_arch(read_rules(synthetic_findings(gradual=True)), 1.0)
    assert [b.out_channels for b in linear.blocks] == [b.out_channels for b in rexnet_v1_arch(1.0).blocks]
    staged = variant_arch(read_rules(synthetic_findings(gradual=False)), 1.0)
    outs = [b.out_channels for b in staged.blocks]
    ends = [sum(n for n, *_ in STAGES[: i + 1]) - 1 for i in range(len(STAGES))]
    assert len(set(outs)) == len(STAGES)  # one width per stage …
    assert sorted(set(outs)) == [linear.blocks[e].out_channels for e in ends]  # … the one ReXNet reaches there
    assert all(b.in_channels == a.out_channels for a, b in zip(staged.blocks, staged.blocks[1:]))


def test_variant_hits_budget_and_records_its_findings(tmp_path):
    path = tmp_path / "findings.json"
    path.write_text(json.dumps(synthetic_findings(nonlinearity="mish", cap=4.2)))
    target = 20_000_000
    arch = from_findings(path, macs_budget=target, num_classes=10, img_size=64, in_chans=3, small_input="off")
    assert {b.expansion for b in expanding(arch)} == {4} and {b.act for b in expanding(arch)} == {"mish"}
    assert abs(independent_macs(arch, 64, "off", 3) - target) <= 0.02 * target
    prov = arch.provenance
    assert prov["findings"] == {
        "path": str(path),
        "schema_version": 1,
        "created": "2026-01-02T03:04:05+0000",
        "command": "python synthetic.py",
    }
    assert prov["budget"]["macs"] == independent_macs(arch, 64, "off", 3)
    # The JSON keeps the provenance; the summary shows it; create_model builds the table.
    save_arch(arch, tmp_path / "variant.json")
    again = load_arch(tmp_path / "variant.json")
    assert again == arch and again.provenance == prov
    assert "recommendations.recommended_nonlinearity = 'mish'" in format_block_table(again)
    model = create_model(str(tmp_path / "variant.json"), num_classes=10).eval()
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_schema_2_is_read_with_its_bound_relative_measure():
    data = synthetic_findings(nonlinearity="relu6", cap=3.2, gradual=False, version=2)
    data["settings"]["design_measure"] = "bound_relative_rank_rtol_1e-2"
    rules = read_rules(data, tau=0.9)
    assert (rules.nonlinearity, rules.max_expansion, rules.schedule) == ("relu6", 3, "stagewise")
    assert rules.source["schema_version"] == 2
    assert rules.evidence["nonlinearity"]["finding"]["measure"] == "bound_relative_rank_rtol_1e-2"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(schema_version=4), "schema_version 4, this builder reads 1, 2, 3"),
        (lambda d: d.update(schema_version="1"), "schema_version '1'"),
        (lambda d: d.pop("schema_version"), "schema_version None"),
        (lambda d: d["recommendations"].pop("gradual_expansion_beats_single"), "missing key"),
        (lambda d: d["recommendations"].update(recommended_nonlinearity="swishy"), "'swishy' is not one of"),
        (lambda d: d["recommendations"]["max_expansion_per_layer"].update({"0.9": "8"}), "not a finite number"),
        (lambda d: d["recommendations"].update(gradual_expansion_beats_single=1), "not true/false/null"),
    ],
)
def test_foreign_findings_are_refused_by_the_cli(tmp_path, change, message):
    data = synthetic_findings()
    change(data)
    findings, out = tmp_path / "findings.json", tmp_path / "variant.json"
    findings.write_text(json.dumps(data))
    result = CliRunner().invoke(
        main, ["build", "--findings", str(findings), "--macs", "12.9M", "--img-size", "32", "--out", str(out)]
    )
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [findings]  # nothing written


def test_cli_builds_a_family_at_a_budget_and_refuses_bad_arguments(tmp_path):
    out = tmp_path / "mnv2.json"
    args = [
        "build",
        "--family",
        "mobilenetv2",
        "--macs",
        "12.9M",
        "--img-size",
        "32",
        "--small-input",
        "s16",
        "--in-chans",
        "1",
        "--num-classes",
        "10",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    arch = load_arch(out)
    # ReXNet-0.5× s16's budget: bisection finds 0.74× (−0.5%); the 0.05 grid it replaces ended at 0.70× (−9%).
    # The JSON is the network matched: in mode s16, for 1-channel input and 10 classes.
    s16, _ = small_input_variant(mobilenetv2_arch(0.74), "s16")
    assert arch == replace(s16, in_chans=1, num_classes=10)
    assert (arch.small_input, arch.stem_stride, arch.strides[-1]) == ("s16", 2, 16)
    assert model_costs(small_input_variant(mobilenetv2_arch(0.7), "s16")[0], 32, in_chans=1)[1] < 0.92 * 12_900_000
    assert abs(arch.provenance["budget"]["macs"] - 12_900_000) <= 0.02 * 12_900_000
    for bad, message in (
        (["--macs", "lots"], "not a number"),
        (["--macs", "1k"], "above the budget"),
        (["--findings", str(out)], "exactly one of --findings"),
    ):
        result = CliRunner().invoke(main, args[:-2] + bad + ["--out", str(tmp_path / "x.json")])
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "x.json").exists()


def test_a_variant_trains_for_one_step_and_reloads(tmp_path):
    from rexnet.training.train import TrainConfig, train

    arch = variant_arch(read_rules(synthetic_findings(nonlinearity="mish", cap=3.0, gradual=False)), 0.25, 0.2)
    path = save_arch(arch, tmp_path / "variant.json")
    cfg = TrainConfig(
        model=str(path),
        data="fake",
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=8,
        img_size=32,
        small_input="s16",
        train_limit=8,
        test_limit=8,
        device="cpu",
        progress=False,
        lr=0.5,
    )
    row = train(cfg)
    assert row["epoch"] == 1 and torch.isfinite(torch.tensor(row["train_loss"]))
    # The weights load strictly into the table they were trained as (a mismatch raises), Mish included; the run
    # trained the table in mode s16, which the (off) table alone is not: that call is refused, the right one works.
    ckpt = str(tmp_path / "run" / "model.pth")
    with pytest.raises(RexnetError, match="small-input mode s16.*small_input='s16'"):
        create_model(str(path), num_classes=10, checkpoint=ckpt)
    trained = create_model(str(path), num_classes=10, checkpoint=ckpt, small_input="s16").eval()
    assert sum(isinstance(m, torch.nn.Mish) for m in trained.modules()) == len(expanding(arch)) + 1
    assert torch.isfinite(trained(torch.randn(2, 3, 32, 32))).all()
