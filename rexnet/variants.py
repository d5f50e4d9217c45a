"""Networks at a MACs budget (width by bisection, MACs within 2% of a target) and ReXNet variants from findings.

A fair comparison of architectures holds the cost fixed (the paper compares models at equal FLOPs,
Tables 3-4). Width multipliers move MACs in steps (channels are rounded), so a fixed grid of widths can
land far from the target (a 0.05 grid left MobileNetV2 9% below ReXNet-0.5x s16 at 32x32); bisection on
the multiplier finds the step that brackets the target and keeps the closer side.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .activations import ACTIVATIONS
from .arch import STAGES, ArchSpec, rexnet_v1_arch
from .baseline import mobilenetv2_arch
from .errors import BudgetUnreachable, RexnetError
from .small_input import small_input_variant
from .summary import model_costs


def arch_macs(
    arch: ArchSpec, *, img_size: int, small_input: str = "off", num_classes: int = 10, in_chans: int = 3
) -> int:
    """Returns the MACs of one image through `arch` after the small-input mode (torch.utils.flop_counter)."""
    # flop_counter counts convolutions and matrix products only, so tables that differ only in their
    # nonlinearities cost the same: one cache entry serves them all (a variant and its ablations).
    plain = replace(
        arch,
        name="",
        provenance=None,
        stem_act="identity",
        penultimate_act="identity",
        head_act="identity",
        blocks=tuple(replace(b, act="identity", dw_act="identity") for b in arch.blocks),
    )
    return _macs(plain, img_size, small_input, num_classes, in_chans)


@functools.lru_cache(maxsize=4096)
def _macs(arch: ArchSpec, img_size: int, small_input: str, num_classes: int, in_chans: int) -> int:
    small, stem_stride = small_input_variant(arch, small_input)
    return model_costs(small, img_size, num_classes=num_classes, in_chans=in_chans, stem_stride=stem_stride)[1]


def match_macs(
    make_arch: Callable[[float], ArchSpec],
    target_macs: int,
    *,
    img_size: int,
    small_input: str = "off",
    num_classes: int = 10,
    in_chans: int = 3,
    lo: float = 0.05,
    hi: float = 4.0,
    rel_tol: float = 0.02,
) -> tuple[float, ArchSpec, int]:
    """Returns (multiplier, arch, macs): bisection on the multiplier so MACs (torch.utils.flop_counter,
    at img_size, after the small-input mode) are within rel_tol of target_macs; clear RexnetError if impossible.

    `make_arch(m)` must build the (full-size) table at multiplier m, with MACs non-decreasing in m; the
    small-input mode is applied here, as at training time. The returned arch is `make_arch(multiplier)`
    itself (before the small-input mode); `network_at_budget` makes it the network matched.
    """
    if not target_macs > 0:
        raise RexnetError(f"MACs budget {target_macs!r} is not positive; give e.g. 12.9M")
    if not 0 < lo < hi:
        raise RexnetError(f"multiplier range [{lo}, {hi}] is empty; use 0 < lo < hi")
    macs_of: dict[ArchSpec, int] = {}  # by table: nearby multipliers often round to the same channels

    def cost(m: float) -> tuple[ArchSpec, int]:
        arch = make_arch(m)
        if arch not in macs_of:
            macs_of[arch] = arch_macs(
                arch, img_size=img_size, small_input=small_input, num_classes=num_classes, in_chans=in_chans
            )
        return arch, macs_of[arch]

    def result(m: float) -> tuple[float, ArchSpec, int]:
        return (m, *cost(m))

    def where() -> str:
        return f"at {img_size}x{img_size}, small-input {small_input}, {in_chans} input channel(s)"

    def near_guess() -> tuple[float, float] | None:
        # MACs grow about as width squared (a 1×1 conv costs in × out channels): from 1.0, a few such guesses
        # (overshooting by 2%) usually straddle the target in 2-4 builds, instead of starting from the whole range.
        m = min(max(1.0, lo), hi)
        for _ in range(4):
            ratio = target_macs / max(cost(m)[1], 1)
            nxt = min(max(m * math.sqrt(ratio) * (1.02 if ratio > 1 else 1 / 1.02), lo), hi)
            if nxt == m:
                return None
            if (cost(m)[1] < target_macs) != (cost(nxt)[1] < target_macs):
                return min(m, nxt), max(m, nxt)
            m = nxt
        return None

    close = rel_tol / 4 * target_macs
    found = near_guess()
    if found is not None:
        a, b = found
    else:
        a, b = lo, hi
        low, high = cost(lo)[1], cost(hi)[1]
        if low > target_macs * (1 + rel_tol):
            raise RexnetError(
                f"{cost(lo)[0].name} costs {low / 1e6:.3g}M MACs even at multiplier {lo} {where()}, "
                f"above the budget {target_macs / 1e6:.3g}M; raise the budget or the image size"
            )
        if high < target_macs * (1 - rel_tol):
            raise RexnetError(
                f"{cost(hi)[0].name} costs only {high / 1e6:.3g}M MACs at multiplier {hi} {where()}, "
                f"below the budget {target_macs / 1e6:.3g}M; lower the budget or the image size"
            )
        if low >= target_macs:
            return result(lo)
    # Invariant: macs(a) < target <= macs(b). Steps alternate between splitting the bracket where sqrt(MACs)
    # (close to linear in the multiplier: MACs grow with width squared) meets the target, and halving it, so
    # the bracket at least halves every two model builds. Channels are integers, so MACs are a step function
    # of the multiplier; 1e-5 is below one channel's step even at 1280×4 channels. The search stops once an
    # end is within a quarter of the tolerance (0.5% by default): closer than that is not worth more builds.
    step = 0
    while b - a > 1e-5 and min(abs(cost(x)[1] - target_macs) for x in (a, b)) > close:
        ra, rb = math.sqrt(cost(a)[1]), math.sqrt(cost(b)[1])
        frac = (math.sqrt(target_macs) - ra) / (rb - ra) if step % 2 == 0 and rb > ra else 0.5
        mid = a + (b - a) * min(0.95, max(0.05, frac))
        if cost(mid)[1] < target_macs:
            a = mid
        else:
            b = mid
        step += 1
    m = min((a, b), key=lambda x: abs(cost(x)[1] - target_macs))
    macs = cost(m)[1]
    if abs(macs - target_macs) > rel_tol * target_macs:
        raise BudgetUnreachable(
            f"no multiplier gives MACs within {rel_tol:.0%} of {target_macs / 1e6:.4g}M {where()}: the nearest are "
            f"{cost(a)[1] / 1e6:.4g}M (x{a:.6f}) and {cost(b)[1] / 1e6:.4g}M (x{b:.6f}); "
            "use a finer channel divisor, a different budget or a larger tolerance"
        )
    # Prefer a short multiplier (0.5 rather than 0.4999999) that is as good.
    good = max(close, abs(macs - target_macs))
    for short in dict.fromkeys(round(m, digits) for digits in (2, 3, 4)):
        if lo <= short <= hi and abs(cost(short)[1] - target_macs) <= good:
            return result(short)
    return result(m)


# --- ReXNet variants from the rank study's findings (results/findings.json, docs/findings_schema.md) --------

# ReXNet's own choices (Section 4.1 and Table 1 of the paper), i.e. what each rule switches back to in an ablation.
REXNET_NONLINEARITY = "silu"
REXNET_EXPANSION = 6


@dataclass(frozen=True)
class Rules:
    """The design rules a findings file gives: nonlinearity after expanding 1×1 convs, expansion cap, schedule.

    `evidence[rule]` is the JSON record of the finding that set it (key, value, measure, CI, …) and
    `source` the findings file's identity (schema, created, command), both copied into the variant's table.
    `undecided` holds one line per rule the findings could not decide (schema 3: its probability of being best
    below 0.8, or a CI that spans ReXNet's choice), for which ReXNet's choice was kept; the CLI prints them.
    """

    nonlinearity: str = REXNET_NONLINEARITY
    max_expansion: int = REXNET_EXPANSION
    schedule: str = "linear"
    tau: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    undecided: tuple[str, ...] = field(default=(), compare=False)

    def ablate(self, rule: str) -> Rules:
        """Returns these rules with one switched back to ReXNet's choice (nonlinearity, expansion or schedule)."""
        back = {"nonlinearity": REXNET_NONLINEARITY, "expansion": REXNET_EXPANSION, "schedule": "linear"}
        if rule not in back:
            raise RexnetError(f"unknown rule {rule!r}; use one of {', '.join(back)}")
        key = "max_expansion" if rule == "expansion" else rule
        evidence = {
            **self.evidence,
            rule: {"ablated": True, "because": "switched back to ReXNet's choice", "instead_of": getattr(self, key)},
        }
        return replace(self, **{key: back[rule]}, evidence=evidence)

    def differs_from_rexnet(self) -> list[str]:
        """Returns the rules whose choice is not ReXNet's (the ones an ablation can switch back)."""
        return [
            rule
            for rule, mine, theirs in (
                ("nonlinearity", self.nonlinearity, REXNET_NONLINEARITY),
                ("expansion", self.max_expansion, REXNET_EXPANSION),
                ("schedule", self.schedule, "linear"),
            )
            if mine != theirs
        ]


def _need(cond: bool, where: str, problem: str) -> None:
    if not cond:
        raise RexnetError(
            f"{where}: {problem}; regenerate it with `rankstudy principles` (format: docs/findings_schema.md)"
        )


def _get(data: Any, path: str, where: str) -> Any:
    """Returns data[a][b]… for path 'a.b…', or a RexnetError naming the missing key."""
    node = data
    for part in path.split("."):
        _need(isinstance(node, dict) and part in node, where, f"missing key {path!r}")
        node = node[part]
    return node


def _opt(node: Any, *keys: str) -> Any:
    """Returns node[k1][k2]… or None where a level is missing or not an object (for the optional `basis`)."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _tau_key(table: dict, tau: float, where: str, what: str) -> str:
    keys = [k for k in table if _is_number(k) and float(k) == tau]
    if not keys:
        raise RexnetError(f"{where} has no {what} for tau {tau:g}; use --tau with one of {', '.join(sorted(table))}")
    return keys[0]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rules_v1(data: dict, tau: float, where: str) -> Rules:
    """Returns the rules in a schema-1 findings file (docs/findings_schema.md, 'For the ReXNet variant builder')."""
    rec = _get(data, "recommendations", where)
    design = _get(data, "settings.design_measure", where)
    basis = _opt(rec, "basis")  # how each recommendation was obtained: copied as evidence where present
    evidence: dict[str, Any] = {}

    name = _get(data, "recommendations.recommended_nonlinearity", where)
    if name is None:
        nonlinearity = REXNET_NONLINEARITY
        evidence["nonlinearity"] = {
            "finding": {"key": "recommendations.recommended_nonlinearity", "value": None},
            "because": "the findings recommend none: ReXNet's choice kept",
        }
    else:
        _need(
            isinstance(name, str) and name in ACTIVATIONS,
            where,
            f"recommended nonlinearity {name!r} is not one of {', '.join(ACTIVATIONS)}",
        )
        nonlinearity = name
        mean = _opt(basis, "recommended_nonlinearity", "by_measure", design, "means", name) or {}
        evidence["nonlinearity"] = {
            "finding": {
                "key": "recommendations.recommended_nonlinearity",
                "value": name,
                "measure": design,
                "mean": _opt(mean, "value"),
                "ci": _opt(mean, "ci"),
                "n": _opt(mean, "n"),
                "tied_with": _opt(basis, "recommended_nonlinearity", "tied_with") or [],
                "kind": _opt(basis, "recommended_nonlinearity", "kind"),
                "rule": _opt(basis, "recommended_nonlinearity", "rule"),
            }
        }

    caps = _get(data, "recommendations.max_expansion_per_layer", where)
    _need(isinstance(caps, dict), where, "recommendations.max_expansion_per_layer is not an object")
    key = _tau_key(caps, tau, where, "recommendations.max_expansion_per_layer")
    per_tau = _opt(basis, "max_expansion_per_layer", "per_tau", key) or {}
    status = _opt(per_tau, "status")
    ratio = caps[key]
    finding = {
        "key": f"recommendations.max_expansion_per_layer.{key}",
        "value": ratio,
        "status": status,
        "measure": _opt(basis, "max_expansion_per_layer", "measure") or design,
        "ci": None,
        "source": _opt(per_tau, "source"),
        "empirical": _opt(per_tau, "empirical"),
        "nonlinearity": _opt(basis, "max_expansion_per_layer", "nonlinearity"),
    }
    if status == "below_range" or ratio is None:
        raise RexnetError(
            f"{where}: no expansion ratio keeps the rank >= {tau:g} (status {status!r}); use a lower --tau"
        )
    _need(
        isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio) and ratio >= 1,
        where,
        f"max_expansion_per_layer[{key}] = {ratio!r}, not a finite number >= 1",
    )
    if status == "above_range":
        # The rank never fell below tau in the sampled range: the value is only a lower bound, so it is no
        # reason to leave ReXNet's expansion.
        max_expansion = REXNET_EXPANSION
        because = (
            f"above_range: the rank stays >= {tau:g} up to the largest sampled ratio, a lower bound; "
            f"ReXNet's {REXNET_EXPANSION} kept"
        )
    else:
        max_expansion = min(REXNET_EXPANSION, math.floor(ratio))
        because = f"floor({ratio:g}) = {math.floor(ratio)}" + (
            f" >= ReXNet's {REXNET_EXPANSION}: the cap does not bind"
            if math.floor(ratio) >= REXNET_EXPANSION
            else f": caps ReXNet's {REXNET_EXPANSION}"
        )
    evidence["expansion"] = {"finding": finding, "because": because}

    gradual = _get(data, "recommendations.gradual_expansion_beats_single", where)
    _need(
        gradual is True or gradual is False or gradual is None,
        where,
        f"gradual_expansion_beats_single = {gradual!r}, not true/false/null",
    )
    schedule = "stagewise" if gradual is False else "linear"
    evidence["schedule"] = {
        "finding": {
            "key": "recommendations.gradual_expansion_beats_single",
            "value": gradual,
            "measure": _opt(basis, "gradual_expansion_beats_single", "measure") or design,
            "difference": _opt(basis, "gradual_expansion_beats_single", "difference"),
            "ci": _opt(basis, "gradual_expansion_beats_single", "ci"),
            "comparison": _opt(basis, "gradual_expansion_beats_single", "comparison"),
        },
        "because": {
            True: "gradual expansion beats a single block: channels grow linearly over blocks",
            False: "gradual expansion does not beat a single block: channels step per stage",
            None: "not testable: ReXNet's linear schedule kept",
        }[gradual],
    }
    source = {
        "schema_version": data.get("schema_version"),
        "created": data.get("created"),
        "command": data.get("command"),
    }
    return Rules(nonlinearity, max_expansion, schedule, tau, evidence, source)


PROB_BEST = 0.8  # a choice below this bootstrap probability of being best is not taken (docs/findings_schema.md)
_BASELINE = {"nonlinearity": REXNET_NONLINEARITY, "expansion": REXNET_EXPANSION, "schedule": "linear"}


def _spans_zero(ci: Any) -> bool:
    return isinstance(ci, list) and len(ci) == 2 and None not in ci and ci[0] <= 0 <= ci[1]


def _rule_v3(rules: dict, name: str, tau_key: str | None, where: str) -> tuple[Any, dict, str | None]:
    """Returns (the value to build, its evidence, a warning line or None) for one rule of a schema-3 file: the
    rule's choice when the findings decided it, else ReXNet's choice and a line saying why."""
    rule = _get(rules, name, where)
    _need(isinstance(rule, dict), where, f"recommendations.rules.{name} is not an object")
    part = rule
    if name == "expansion" and tau_key is not None:
        per_tau = _get(rule, "per_tau", where)
        _need(isinstance(per_tau, dict), where, "recommendations.rules.expansion.per_tau is not an object")
        part = {**rule, **per_tau[_tau_key(per_tau, float(tau_key), where, "rules.expansion.per_tau")]}
    source = (
        part if name != "expansion" or part.get("form") == "threshold" else {**part, **(rule.get("comparison") or {})}
    )
    choice, prob = part.get("choice"), source.get("prob_best")
    vs = source.get("vs_baseline") or {}
    evidence = {
        "key": f"recommendations.rules.{name}",
        "form": part.get("form"),
        "measure": rule.get("measure"),
        "choice": choice,
        "best": part.get("best"),
        "decided": part.get("decided"),
        "reason": part.get("reason"),
        "estimate": (source.get("options") or [{}])[0].get("value") if name != "schedule" else rule.get("value"),
        "ci": (source.get("options") or [{}])[0].get("ci") if name != "schedule" else rule.get("ci"),
        "prob_best": prob,
        "lead": source.get("lead"),
        "vs_baseline": vs or None,
        "n_networks": (rule.get("rows") or {}).get("n_networks"),
        "rows": (rule.get("rows") or {}).get("source"),
    }
    why = None
    if part.get("decided") is not True or choice is None:
        why = part.get("reason") or "not decided"
    elif isinstance(prob, (int, float)) and prob < PROB_BEST:
        why = f"P(best) {prob:.2f} < {PROB_BEST}"
    elif _spans_zero(vs.get("ci")):
        why = f"the CI of its difference from ReXNet's {vs.get('baseline')}, {vs.get('ci')}, spans 0"
    if part.get("form") == "threshold":  # the estimate is the threshold itself, with its bootstrap CI
        t = _opt(rule, "threshold", "by_measure", rule.get("measure"), tau_key) or {}
        evidence.update(estimate=t.get("ratio"), ci=t.get("ci"), empirical_spread=t.get("empirical_spread"))
    baseline = _BASELINE[name]
    if why is None:
        return choice, {"finding": evidence, "because": f"decided: {part.get('reason')}"}, None
    line = f"rule {name} is not decided ({why}): ReXNet's {baseline} kept (best in the data: {part.get('best')})"
    return baseline, {"finding": evidence, "because": f"not decided: ReXNet's {baseline} kept"}, line


def _rules_v3(data: dict, tau: float, where: str) -> Rules:
    """Returns the rules of a schema-3 findings file (docs/findings_schema.md, 'For the ReXNet variant builder'):
    each rule's choice where the findings decided it, ReXNet's choice (and a line in `undecided`) where not."""
    rules = _get(data, "recommendations.rules", where)
    _need(isinstance(rules, dict), where, "recommendations.rules is not an object")
    undecided, evidence = [], {}
    nonlinearity, evidence["nonlinearity"], line = _rule_v3(rules, "nonlinearity", None, where)
    undecided += [line] if line else []
    _need(
        isinstance(nonlinearity, str) and nonlinearity in ACTIVATIONS,
        where,
        f"recommended nonlinearity {nonlinearity!r} is not one of {', '.join(ACTIVATIONS)}",
    )
    expansion, evidence["expansion"], line = _rule_v3(rules, "expansion", f"{tau:g}", where)
    undecided += [line] if line else []
    _need(
        isinstance(expansion, int) and not isinstance(expansion, bool) and expansion >= 1,
        where,
        f"rules.expansion choice {expansion!r} is not an integer >= 1",
    )
    schedule, evidence["schedule"], line = _rule_v3(rules, "schedule", None, where)
    undecided += [line] if line else []
    _need(schedule in ("linear", "stagewise"), where, f"rules.schedule choice {schedule!r} is not linear/stagewise")
    source = {"schema_version": 3, "created": data.get("created"), "command": data.get("command")}
    return Rules(nonlinearity, min(REXNET_EXPANSION, expansion), schedule, tau, evidence, source, tuple(undecided))


# schema_version → reader. A new schema adds one reader returning the same Rules.
# Schema 2 keeps schema 1's keys: its recommendations are read from bound-relative measures (rank divided by
# min(d_out, structural bound)) and `gradual_expansion_beats_single` compares stacks and blocks relative to
# each one's bound; the builder applies them the same way, and the evidence records the measure used.
# Schema 3 gives each rule with its uncertainty (`recommendations.rules`): a rule is applied only where decided.
FINDINGS_READERS: dict[int, Callable[[dict, float, str], Rules]] = {1: _rules_v1, 2: _rules_v1, 3: _rules_v3}


def read_rules(findings: dict | str | os.PathLike, *, tau: float = 0.9) -> Rules:
    """Returns the design rules of a findings file (path or parsed dict); RexnetError for any other schema."""
    where = "findings"
    path = None
    if not isinstance(findings, dict):
        path = Path(findings)
        where = f"findings file {path}"
        if not path.is_file():
            raise RexnetError(f"{where} does not exist; write it with `rankstudy principles` or check the path")
        try:
            findings = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RexnetError(f"{where} is not valid JSON ({exc}); regenerate it with `rankstudy principles`") from None
    if not isinstance(findings, dict):
        raise RexnetError(f"{where} is not a JSON object; give the findings.json `rankstudy principles` writes")
    version = findings.get("schema_version")
    if version not in FINDINGS_READERS or isinstance(version, bool):
        raise RexnetError(
            f"{where} has schema_version {version!r}, this builder reads "
            f"{', '.join(map(str, FINDINGS_READERS))}; regenerate it with this version's "
            "`rankstudy principles` or update rankstudy-rexnet"
        )
    rules = FINDINGS_READERS[version](findings, tau, where)
    if path is not None:
        rules = replace(rules, source={"path": str(path), **rules.source})
    return rules


def _stage_of_blocks(depth_mult: float) -> list[int]:
    return [stage for stage, (n, *_) in enumerate(STAGES) for _ in range(math.ceil(n * depth_mult))]


def variant_arch(rules: Rules, width_mult: float, depth_mult: float = 1.0, *, name: str | None = None) -> ArchSpec:
    """Returns ReXNet-V1's table at (width, depth) with the rules applied; its provenance says which finding
    chose what. Depthwise nonlinearity (ReLU6), SE, stem and head stay ReXNet's."""
    base = rexnet_v1_arch(width_mult, depth_mult)
    outs = [b.out_channels for b in base.blocks]
    if rules.schedule == "stagewise":
        # Each stage at the width ReXNet reaches at its end: channels step at stage boundaries (MobileNetV2-like).
        stages = _stage_of_blocks(depth_mult)
        last = {s: outs[i] for i, s in enumerate(stages)}
        outs = [last[s] for s in stages]
    blocks, prev = [], base.stem_channels
    for b, out in zip(base.blocks, outs):
        expansion = b.expansion if b.expansion == 1 else min(b.expansion, rules.max_expansion)
        blocks.append(
            replace(
                b,
                in_channels=prev,
                out_channels=out,
                expansion=expansion,
                act=rules.nonlinearity if expansion != 1 else b.act,
            )
        )
        prev = out
    expanding = [f"blocks.{i}.act" for i, b in enumerate(blocks) if b.expansion != 1]
    pen_expands = base.penultimate_channels > prev
    if pen_expands:
        expanding.append("penultimate_act")
    choices = {}
    for rule, value, applies in (
        ("nonlinearity", rules.nonlinearity, expanding),
        (
            "expansion",
            rules.max_expansion,
            [f"blocks.{i}.expansion" for i, b in enumerate(base.blocks) if b.expansion != 1],
        ),
        ("schedule", rules.schedule, [f"blocks.{i}.out_channels" for i in range(len(blocks))]),
    ):
        choices[rule] = {"value": value, "applies_to": applies, **rules.evidence.get(rule, {})}
    arch = replace(
        base,
        name=name or f"rexnet_findings_{round(width_mult * 100):03d}",
        blocks=tuple(blocks),
        penultimate_act=rules.nonlinearity if pen_expands else base.penultimate_act,
        provenance={
            "builder": "rexnet.variants.variant_arch",
            "findings": rules.source,
            "tau": rules.tau,
            "width_mult": width_mult,
            "depth_mult": depth_mult,
            "choices": choices,
            "undecided": list(rules.undecided),
        },
    )
    return arch


def network_at_budget(arch: ArchSpec, budget: dict[str, Any], name: str | None = None) -> ArchSpec:
    """Returns the network whose MACs were matched: `arch` (a match_macs table, before the small-input mode) in
    the budget's small-input mode, with its input channels and classes, named `name` when given."""
    small, _ = small_input_variant(arch, budget["small_input"])
    small = replace(small, in_chans=budget["in_chans"], num_classes=budget["num_classes"])
    return replace(small, name=name) if name else small


def _with_budget(arch: ArchSpec, budget: dict[str, Any], name: str | None = None) -> ArchSpec:
    prov = dict(arch.provenance or {})
    choices = dict(prov.get("choices", {}))
    choices["width"] = {
        "value": budget["width_mult"],
        "because": f"bisection: {budget['macs'] / 1e6:.4g}M MACs, within {budget['rel_tol']:.0%} of "
        f"the budget {budget['macs_budget'] / 1e6:.4g}M at {budget['img_size']}x"
        f"{budget['img_size']} (small-input {budget['small_input']})",
    }
    if budget["depth_given"] or "mobilenetv2" not in prov.get("builder", ""):
        choices["depth"] = {
            "value": budget["depth_mult"],
            "because": "given" if budget["depth_given"] else "ReXNet's (depth multiplier 1.0)",
        }
    prov.update(choices=choices, budget=budget)
    return replace(network_at_budget(arch, budget, name), provenance=prov)


def from_findings(
    findings: dict | str | os.PathLike | Rules,
    *,
    macs_budget: int,
    num_classes: int,
    img_size: int = 224,
    in_chans: int = 3,
    small_input: str = "off",
    tau: float = 0.9,
    depth: float | None = None,
    rel_tol: float = 0.02,
    name: str | None = None,
) -> ArchSpec:
    """Returns the ReXNet variant the findings prescribe, its width bisected so MACs (torch.utils.flop_counter,
    at img_size, after the small-input mode) are within rel_tol of macs_budget: the network matched, i.e. in
    the small-input mode (block strides, stem stride) with in_chans and num_classes, so that the table builds
    it alone (`create_model(saved JSON)`, `rexnet train --arch`); its provenance records the budget.

    Rules (docs/findings_schema.md): the recommended nonlinearity after every expanding 1×1 conv; every
    block's expansion ≤ max_expansion_per_layer[tau] (ReXNet's 6 kept when that is only a lower bound,
    `above_range`); channels growing linearly over blocks if gradual expansion beats a single block, per stage
    otherwise. `depth` is ReXNet's depth multiplier (blocks per stage = ceil(n · depth)); None keeps 1.0.
    """
    rules = findings if isinstance(findings, Rules) else read_rules(findings, tau=tau)
    depth_mult = 1.0 if depth is None else float(depth)
    if not depth_mult > 0:
        raise RexnetError(f"depth multiplier {depth!r} is not positive; use e.g. 1.0")
    width, arch, macs = match_macs(
        lambda w: variant_arch(rules, w, depth_mult, name=name),
        macs_budget,
        img_size=img_size,
        small_input=small_input,
        num_classes=num_classes,
        in_chans=in_chans,
        rel_tol=rel_tol,
    )
    return _with_budget(
        arch,
        _budget(
            macs_budget,
            macs,
            width,
            depth_mult,
            depth is not None,
            img_size,
            small_input,
            num_classes,
            in_chans,
            rel_tol,
        ),
        name,
    )


def _budget(
    macs_budget, macs, width, depth_mult, depth_given, img_size, small_input, num_classes, in_chans, rel_tol
) -> dict[str, Any]:
    return {
        "macs_budget": int(macs_budget),
        "macs": int(macs),
        "width_mult": width,
        "depth_mult": depth_mult,
        "depth_given": depth_given,
        "img_size": img_size,
        "small_input": small_input,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "rel_tol": rel_tol,
    }


FAMILIES = ("rexnet", "mobilenetv2")


def family_at_macs(
    family: str,
    *,
    macs_budget: int,
    num_classes: int,
    img_size: int = 224,
    in_chans: int = 3,
    small_input: str = "off",
    depth: float | None = None,
    rel_tol: float = 0.02,
) -> ArchSpec:
    """Returns ReXNet-V1 or MobileNetV2 as published, its width bisected to the MACs budget: the network matched,
    small-input mode, in_chans and num_classes included (as from_findings)."""
    if family not in FAMILIES:
        raise RexnetError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    if family == "mobilenetv2" and depth is not None:
        raise RexnetError("--depth applies to the rexnet family and variants only; drop it for mobilenetv2")
    depth_mult = 1.0 if depth is None else float(depth)
    make = (lambda w: rexnet_v1_arch(w, depth_mult)) if family == "rexnet" else mobilenetv2_arch
    width, arch, macs = match_macs(
        make,
        macs_budget,
        img_size=img_size,
        small_input=small_input,
        num_classes=num_classes,
        in_chans=in_chans,
        rel_tol=rel_tol,
    )
    arch = replace(arch, provenance={"builder": f"rexnet.variants.family_at_macs({family!r})"})
    return _with_budget(
        arch,
        _budget(
            macs_budget,
            macs,
            width,
            depth_mult,
            depth is not None,
            img_size,
            small_input,
            num_classes,
            in_chans,
            rel_tol,
        ),
    )


def parse_macs(text: str) -> int:
    """Returns the MACs a string gives: a number with an optional k/M/G suffix ('12.9M' = 12,900,000)."""
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}
    raw = text.strip()
    factor = scale.get(raw[-1:].lower(), 1.0)
    number = raw[:-1] if raw[-1:].lower() in scale else raw
    try:
        value = float(number) * factor
    except ValueError:
        raise RexnetError(f"MACs budget {text!r} is not a number; write e.g. 12.9M, 400M or 1.2G") from None
    if not value >= 1 or math.isinf(value):
        raise RexnetError(f"MACs budget {text!r} is not a positive number of MACs; write e.g. 12.9M")
    return int(round(value))
