"""Renders a findings dict (`rankstudy.findings.principles.find_principles`, schema docs/findings_schema.md) as
FINDINGS.md, readable in two minutes: one table first (each of the paper's findings (§3, Figure 1) and each
design rule → verdict → effect size with its CI under the design measure → where it flips), then the rules
with their uncertainty, then, as an appendix, the per-measure detail (verdicts under every measure,
structural vs nonlinearity, factor dependence, rankings, thresholds)."""

from .measures import BOUND_TWIN

STATUS_MARK = {"holds": "✓", "opposite": "✗ (opposite)", "tied": "= (tied)", "undecided": "?", "untestable": "–"}


def _tau_key(tau: float) -> str:
    return f"{tau:g}"


def _num(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _signed(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:+.{digits}f}"


def _ci(ci) -> str:
    return "" if ci is None or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _n(n) -> str:
    if isinstance(n, list):
        return "/".join(f"{int(v):,}" for v in n)
    return "–" if n is None else f"{int(n):,}"


def _ratio(t: dict) -> str:
    if t["status"] == "above_range":
        return f"≥ {t['ratio']:.3g} (never below τ)"
    if t["status"] == "below_range":
        return "< smallest ratio"
    if t["status"] == "no_fit":
        return "no fit"
    return f"{t['ratio']:.3g}"


def _ratio_ci(t: dict) -> str:
    """Returns a threshold's CI, its ends beyond the sampled ratios written as such (`ci_ends`)."""
    ci, ends = t.get("ci"), t.get("ci_ends") or ["crossed", "crossed"]
    if not ci:
        return ""
    top = (t.get("ratio_range") or [None, None])[1]

    def end(v, status):
        if status == "above_range":
            return f"≥ {top:.3g}" if top is not None else "above range"
        if status == "below_range":
            return "below range"
        return "–" if v is None else f"{v:.3g}"

    return f" [{end(ci[0], ends[0])}, {end(ci[1], ends[1])}]"


def _parts(findings: dict):
    """Yields (label, part) for every judged finding: (a), (b) nonlinear_above_linear, (b) complicated…, (c)."""
    for key, item in findings["paper_findings"].items():
        for name, part in (item.get("parts") or {"": item}).items():
            yield f"({key})" + (f" {name}" if name else ""), part


def _flips_text(part: dict, limit: int = 6) -> str:
    flips = part.get("flips") or []
    if not flips:
        return "nowhere (every factor level as pooled)"
    texts = [f"{x['kind']} {x['status']} at {x['factor']}={x['level']} ({_signed(x['difference'])})" for x in flips]
    more = f"; … +{len(texts) - limit} more" if len(texts) > limit else ""
    return "; ".join(texts[:limit]) + more


def _effects_text(part: dict) -> str:
    design = part.get("measure")
    return "; ".join(
        f"{e['kind']}{'†' if e.get('measure', design) != design else ''} {_signed(e['difference'])}{_ci(e['ci'])} "
        f"{STATUS_MARK[e['status']]}"
        for e in part.get("effects") or []
    )


def findings_markdown(findings: dict) -> str:
    """Returns FINDINGS.md: the summary table, the design rules with their uncertainty, the per-measure appendix."""
    f, src, st = findings, findings["source"], findings["settings"]
    rules = f["recommendations"]["rules"]
    choice = st.get("design_measure_choice") or {}
    design = st["design_measure"]
    config = src.get("config") or {}
    rule_study = f.get("rule_study") or {}
    lines = [
        "# Rank study: findings",
        "",
        f"Paper findings from {src['rows_used']:,} random networks (seed {src['seed']}, `{src['command']}`); "
        + (
            "design rules from the rule study ("
            + ", ".join(f"{name} {r['rows_used']:,}" for name, r in rule_study.items())
            + f" networks, seed {next(iter(rule_study.values()))['seed']}); "
            if rule_study
            else "design rules from the same table (no rule study given); "
        )
        + f"written by `{f['command']}` at {f['created']} (findings schema v{f['schema_version']}).",
        "",
        _design_line(choice, design),
        "",
        f"Every effect is a difference of means with its {st['confidence']:.0%} percentile-bootstrap CI over "
        f"networks; a cell **holds** (✓) when the difference is material (CI ≥ {st['material_difference']}) at a "
        f"false-discovery rate of {st['fdr']:g} over the finding's cells, is **tied** (=) only when TOST shows it "
        f"within ±{st['material_difference']}, and is undecided (?) otherwise. A rule is decided when P(best) ≥ "
        f"{st['prob_best']:g} and its lead is material; an undecided rule keeps ReXNet's choice.",
        "",
        "## Summary",
        "",
        f"| finding or rule | verdict | effect under `{design}` (kind: difference [95% CI]) | where it flips |",
        "|---|---|---|---|",
    ]
    for label, part in _parts(f):
        lines.append(
            f"| {label} {part['claim']} | **{part['verdict'].replace('_', ' ')}** | {_effects_text(part)} | "
            f"{_flips_text(part)} |"
        )
    for name in ("nonlinearity", "expansion", "schedule"):
        lines.append(_rule_row(rules[name]))
    lines += [
        "",
        "† one layer: read under the design measure's normalised twin, which equals it there (the bound is d_out). "
        "✓ holds, ? undecided, = tied, ✗ opposite. Networks per cell and every other measure: appendix.",
        "",
        *_rules_section(f),
        *_appendix(f, config),
    ]
    return "\n".join(lines)


def _design_line(choice: dict, design: str) -> str:
    if choice.get("source") == "proxy_report":
        cands = ", ".join(
            f"{m} {c['rho']:.3f}{_ci(c.get('rho_ci'))} (`{c['proxy']}`)"
            for m, c in sorted(choice["candidates"].items(), key=lambda kv: -kv[1]["rho"])
        )
        partial = (
            f" The benchmark is **PARTIAL** ({choice.get('n_scored')} of {choice.get('n_planned')} cells scored): "
            "the choice is re-read whenever the findings are regenerated."
            if choice.get("partial")
            else ""
        )
        overlap = (
            " Its CI overlaps the runner-up's."
            if choice.get("ci_overlaps_runner_up")
            else " Its CI does not overlap the runner-up's."
            if choice.get("ci_overlaps_runner_up") is False
            else ""
        )
        return (
            f"**Design measure: `{design}`**, the bound-relative twin of `{choice['base_measure']}`, whose rank proxy "
            f"`{choice['proxy']}` best predicts trained accuracy in the proxy benchmark: Spearman ρ = "
            f"{choice['rho']:.3f}{_ci(choice.get('rho_ci'))} with {choice['accuracy_column']}, n = {choice['n']} "
            f"{choice.get('n_unit', '')} ({choice['report']}). Best proxy per measure: {cands}.{overlap}{partial}"
        )
    return f"**Design measure: `{design}`** ({choice.get('why', 'given')})."


def _rule_row(rule: dict) -> str:
    name = rule["rule"]
    verdict = (
        f"decided: **{rule['choice']}**"
        if rule["decided"]
        else f"undecided: keep ReXNet's **{rule['baseline']}** (best: {rule.get('best')})"
    )
    if name == "schedule":
        effect = f"stack − block {_signed(rule.get('value'))}{_ci(rule.get('ci'))}, n {_n(rule['rows']['n_per_option'].get('stack'))}/{_n(rule['rows']['n_per_option'].get('block'))}"
        flips = "; ".join(f"{lv} {_signed(x['value'])}{_ci(x['ci'])}" for lv, x in (rule.get("by_input") or {}).items())
        flips = f"by input: {flips}" if flips else "–"
    else:
        part = rule if name == "nonlinearity" or rule["form"] == "choice" else rule["comparison"]
        if name == "expansion" and rule["form"] == "threshold":
            t = rule["threshold"]["by_measure"][rule["measure"]][next(iter(rule["per_tau"]))]
            effect = f"cap {_ratio(t)}{_ratio_ci(t)} (τ {next(iter(rule['per_tau']))})"
        else:
            opts = part.get("options") or []
            effect = "; ".join(
                f"{o['option']} {_num(o['value'])}{_ci(o['ci'])} P(best) {o['prob_best']:.2f}" for o in opts[:3]
            )
            lead = part.get("lead")
            if lead:
                effect += f"; lead over {lead['over']} {_signed(lead['value'])}{_ci(lead['ci'])}"
        by_input = (rule.get("sensitivity") or {}).get("by_input") or part.get("by_input") or {}
        flips = ", ".join(f"{lv}: {b['best']} ({b['prob_best']:.2f})" for lv, b in by_input.items())
        flips = f"best by input: {flips}" if flips else "–"
    return f"| rule: {rule['question']} | {verdict} | {effect} | {flips} |"


def _rows_text(record: dict) -> str:
    filters = ", ".join(f"{c} {op} {v}" for c, op, v in record["filters"])
    relaxed = (
        "; relaxed (no rows): "
        + ", ".join(f"{r['filter'][0]} {r['filter'][1]} {r['filter'][2]}" for r in record["relaxed"])
        if record["relaxed"]
        else ""
    )
    per = record.get("n_per_option") or {}
    per_text = f"; per option {min(per.values()):,}–{max(per.values()):,}" if per else ""
    return f"{record['source']}: {filters}{relaxed} → {record['n_networks']:,} networks{per_text}"


def _options_table(choice: dict, head: str) -> list[str]:
    lines = [f"| {head} | mean [95% CI] | networks | P(best) |", "|---|---|---|---|"]
    for o in choice.get("options") or []:
        lines.append(f"| {o['option']} | {_num(o['value'])}{_ci(o['ci'])} | {_n(o['n'])} | {o['prob_best']:.3f} |")
    return lines


def _decision(rule: dict, part: dict) -> str:
    lead = part.get("lead")
    vs = part.get("vs_baseline")
    bits = [f"**{'decided' if part.get('decided') else 'undecided'}**: {part.get('reason')}."]
    if lead:
        bits.append(
            f"Lead of {part['best']} over {lead['over']}: {_signed(lead['value'])}{_ci(lead['ci'])} "
            f"({lead['material']}; TOST: {lead['tost']})."
        )
    if vs:
        bits.append(
            f"Against ReXNet's {vs['baseline']}: {_signed(vs['value'])}{_ci(vs['ci'])} ({vs['material']}; "
            f"TOST: {vs['tost']})."
        )
    return " ".join(bits)


def _brief_table(title: str, views: dict) -> list[str]:
    if not views:
        return []
    lines = [f"| {title} | best | P(best) | its mean [CI] | runner-up | lead [CI] |", "|---|---|---|---|---|---|"]
    for key, b in views.items():
        lines.append(
            f"| {key} | {b['best']} | {_num(b['prob_best'], 2)} | {_num(b['value'])}{_ci(b['ci'])} | "
            f"{b.get('runner_up') or '–'} | {_signed(b.get('lead'))}{_ci(b.get('lead_ci'))} |"
        )
    return [*lines, ""]


def _rules_section(f: dict) -> list[str]:
    rules = f["recommendations"]["rules"]
    st = f["settings"]
    nl, ex, sc = rules["nonlinearity"], rules["expansion"], rules["schedule"]
    lines = [
        "## Design rules (what `rexnet build` applies), with their uncertainty",
        "",
        f"### Nonlinearity after an expanding 1×1 conv: {'**' + str(nl['choice']) + '**' if nl['decided'] else 'undecided (ReXNet keeps ' + nl['baseline'] + ')'}",
        "",
        f"Rows: {_rows_text(nl['rows'])}. Measure `{nl['measure']}`.",
        "",
        *_options_table(nl, "nonlinearity"),
        "",
        _decision(nl, nl),
        "",
        *_brief_table("input (all inputs, same rows otherwise)", nl["sensitivity"]["by_input"]),
        *_brief_table("leaving a design input out", nl["sensitivity"]["leave_one_input_out"]),
        *_brief_table("measure", nl["sensitivity"]["by_measure"]),
    ]
    thr = ex["threshold"]
    lines += [
        f"### Expansion per block: {'**t ≤ ' + str(ex['choice']) + '**' if ex['decided'] else 'undecided (ReXNet keeps t = ' + str(ex['baseline']) + ')'} ({ex['form']})",
        "",
        f"Threshold rows (the block's expanding 1×1 conv, {ex['nonlinearity']}): {_rows_text(thr['rows'])}. "
        f"Bootstrap: {thr['n_resamples']} resamples of {thr['resampling']}.",
        "",
        "| measure | τ | largest r keeping it ≥ τ [95% CI] | status shares (crossed / above / below) | empirical threshold over resamples |",
        "|---|---|---|---|---|",
    ]
    for m, per_tau in thr["by_measure"].items():
        if (
            m.startswith("bound_relative_")
            and BOUND_TWIN_INV.get(m) in thr["by_measure"]
            and per_tau == thr["by_measure"][BOUND_TWIN_INV[m]]
        ):
            continue  # one layer: the bound-relative twin is the same measure
        for tau, t in per_tau.items():
            shares = t.get("status_shares") or {}
            spread = ", ".join(f"{k} {v:.0%}" for k, v in (t.get("empirical_spread") or {}).items())
            lines.append(
                f"| {m}{' (design)' if m == ex['measure'] else ''} | {tau} | {_ratio(t)}{_ratio_ci(t)} | "
                f"{shares.get('crossed', 0):.0%} / {shares.get('above_range', 0):.0%} / {shares.get('below_range', 0):.0%} | {spread} |"
            )
    cmp_ = ex["comparison"]
    lines += [
        "",
        f"Comparison rows ({ex['nonlinearity']}): {_rows_text(cmp_['rows'])}.",
        "",
        *_options_table(cmp_, "expansion t"),
        "",
        _decision(ex, cmp_),
        "",
        " ".join(
            f"τ {tau}: {p['form']}, {'decided ' + str(p['choice']) if p['decided'] else 'undecided'} ({p['reason']})."
            for tau, p in ex["per_tau"].items()
        ),
        "",
        *_brief_table("input (all inputs)", cmp_.get("by_input") or {}),
        *_brief_table("measure", cmp_.get("by_measure") or {}),
    ]
    lines += [
        f"### Schedule (gradual expansion over several blocks vs one): {'**' + str(sc['choice']) + '**' if sc['decided'] else 'undecided (ReXNet keeps ' + sc['baseline'] + ')'}",
        "",
        f"Rows ({sc.get('nonlinearity')}): {_rows_text(sc['rows'])}.",
        "",
    ]
    if sc.get("value") is not None:
        cap = sc.get("structural_capacity") or {}
        lines += [
            f"Stack − block under `{sc['measure']}`: {_signed(sc['value'])}{_ci(sc['ci'])} ({sc['material']}; TOST: "
            f"{sc.get('tost')}); {sc['reason']}. Structurally a stack's bound allows {_signed(cap.get('value'))}"
            f"{_ci(cap.get('ci'))} more of d_out than a block's ({cap.get('material')}).",
            "",
            "| view | stack − block [95% CI] | networks (stack/block) | materiality |",
            "|---|---|---|---|",
        ]
        for title, views in (
            ("input", sc.get("by_input") or {}),
            ("measure", sc.get("by_measure") or {}),
            ("band", {x["band"]: x for x in sc.get("by_band") or []}),
            ("stack depth", {str(x["depth"]): x for x in sc.get("by_depth") or []}),
        ):
            for key, x in views.items():
                lines.append(
                    f"| {title} {key} | {_signed(x['value'])}{_ci(x['ci'])} | {_n(x['n'])} | {x['material']} |"
                )
        lines.append("")
    else:
        lines += [f"Not tested: {sc['reason']}.", ""]
    struct = f["recommendations"].get("structural") or {}
    lines += [
        f"Structural (shapes alone): a block's rank is capped at {struct.get('block_rank_cap')}; gradual expansion "
        f"raises the bound: {struct.get('gradual_expansion_raises_bound')}; normalised by d_out the stack beats the "
        f"block: {struct.get('gradual_expansion_beats_single_normalized')}. Thresholds τ: {st['taus']}.",
        "",
    ]
    return lines


BOUND_TWIN_INV = {b: m for m, b in BOUND_TWIN.items()}


def _appendix(f: dict, config: dict) -> list[str]:
    st = f["settings"]
    measures = st["measures"]
    lines = [
        "## Appendix: per-measure detail",
        "",
        f"Config of the main study: kinds {config.get('kinds')}, d_in {config.get('d_in')}, expansion ratio "
        f"{config.get('ratio_min')}–{config.get('ratio_max')} ({config.get('n_ratios')} log steps), nominal N/d_out "
        f"{config.get('n_over_d')} (judged by the measured N/d_out, binned: {_levels(f, 'n_over_d_bin')}), init "
        f"{config.get('inits')}, norm {config.get('norms')}, inputs {config.get('input_dists', config.get('input_dist'))}. "
        "The `bound_relative_*` measures divide by min(d_out, structural bound) instead of d_out "
        "(`rankstudy.random_nets.bounds`; for a block min(d_out, N, (t + 1)·d_in), with the input's measured rank "
        "where the table records it); for one layer they equal their normalised twins and are not judged twice.",
        "",
        "### Verdicts under every measure",
        "",
        "| finding | " + " | ".join(measures) + " |",
        "|---|" + "---|" * len(measures),
    ]
    for label, part in _parts(f):
        lines.append(
            f"| {label} | " + " | ".join(part["by_measure"].get(m, "–").replace("_", " ") for m in measures) + " |"
        )
    lines.append("")
    for label, part in _parts(f):
        lines += [
            f"### {label} {part['claim']}: {part['verdict'].replace('_', ' ')}",
            "",
            f"Tested as: {part['operationalised']}.",
            "",
            f"Where it holds, per measure: {part['summary']}.",
            "",
            "Pooled over the factors (difference [95% CI] status; networks x/y):",
            "",
            "| kind | " + " | ".join(measures) + " |",
            "|---|" + "---|" * len(measures),
        ]
        for kind in dict.fromkeys(c["kind"] for c in part["cells"]):
            row = []
            for m in measures:
                cell = next(
                    (c for c in part["cells"] if c["kind"] == kind and c["measure"] == m and c["factor"] == "all"),
                    None,
                )
                row.append(
                    "–"
                    if cell is None
                    else f"{_signed(cell['difference'])}{_ci(cell['ci'])} {STATUS_MARK[cell['status']]}"
                )
            n = next((c["n"] for c in part["cells"] if c["kind"] == kind and c["factor"] == "all"), None)
            lines.append(f"| {kind} ({_n(n)}) | " + " | ".join(row) + " |")
        lines.append("")
    lines += _attribution_section(f) + _dependence_section(f) + _bound_section(f) + _rankings_section(f)
    return lines + _curves_section(f)


def _bound_section(f: dict) -> list[str]:
    check = f.get("bound_check")
    if not check or not check.get("by_input_norm"):
        return []
    lines = [
        "### The linear bound against the identity networks",
        "",
        f"{check['what']}; the input's measured rank used: {check['uses_input_rank']}.",
        "",
        "| input / norm | networks | below the bound | above | mean (max) gap / bound |",
        "|---|---|---|---|---|",
    ]
    for key, x in check["by_input_norm"].items():
        lines.append(
            f"| {key} | {x['n']} | {x['below']} | {x['above']} | {x['mean_relative_gap']:.2%} ({x['max_relative_gap']:.0%}) |"
        )
    return [*lines, ""]


def _levels(findings: dict, factor: str) -> str:
    cells = findings["paper_findings"]["a"].get("cells", [])
    return ", ".join(sorted({c["level"] for c in cells if c["factor"] == factor})) or "–"


def _attribution_section(f: dict) -> list[str]:
    """Returns the section saying, per finding and kind, whether it is structural or the nonlinearity's."""
    pairs = list(BOUND_TWIN.items())
    lines = [
        "### Structural, or caused by the nonlinearity?",
        "",
        "Per finding and kind, pooled over the factors: **nonlinearity** = holds relative to the structural "
        "bound (the nonlinearity causes it; for one layer the bound is d_out); **structural** = holds normalised "
        "by d_out but not relative to the bound (the shapes alone cause it); none = holds under neither.",
        "",
        "| finding | kind | " + " | ".join(m for m, _ in pairs) + " |",
        "|---|---|" + "---|" * len(pairs),
    ]
    for label, part in _parts(f):
        att = part.get("attribution", [])
        for kind in dict.fromkeys(a["kind"] for a in att):
            cells = []
            for m, _ in pairs:
                a = next((a for a in att if a["kind"] == kind and a["measure"] == m), None)
                cells.append("–" if a is None else f"**{a['cause']}**" if a["cause"] != "none" else "none")
            lines.append(f"| {label} | {kind} | " + " | ".join(cells) + " |")
    return lines + [""]


def _dependence_section(f: dict) -> list[str]:
    """Returns the tables of each finding's verdict per level of the input distribution and of N/d_out."""
    st = f["settings"]
    lines = []
    for factor, title in (("input_dist", "input distribution"), ("n_over_d_bin", "measured N/d_out (binned)")):
        rows = []
        for label, part in _parts(f):
            dep = (part.get("factor_dependence") or {}).get(factor)
            if not dep:
                continue
            for level, verdicts in dep.items():
                rows.append(
                    f"| {label} | {level} | "
                    + " | ".join(verdicts.get(m, "–").replace("_", " ") for m in st["measures"])
                    + " |"
                )
        if rows:
            lines += [
                f"### Verdicts by {title}",
                "",
                "Each finding judged on the rows at one level only (all its kinds):",
                "",
                "| finding | level | " + " | ".join(st["measures"]) + " |",
                "|---|---|" + "---|" * len(st["measures"]),
                *rows,
                "",
            ]
    return lines


def _rankings_section(f: dict) -> list[str]:
    st = f["settings"]
    lines = [
        "### Nonlinearities ranked per expansion-ratio band (all kinds pooled)",
        "",
        "Normalised measures only (per kind and bound-relative in findings.json `rankings`). Mean [95% CI] "
        "(rank); **bold** = not shown below the band's best (Welch–Holm; not shown different is not 'tied').",
        "",
    ]
    band_labels = [b["label"] for b in st["bands"]]
    for m in [m for m in st["measures"] if not m.startswith("bound_relative_")]:
        ranks = {x["band"]: x for x in f["rankings"] if x["measure"] == m and x["kind"] == "all"}
        if not ranks:
            continue
        nls = [o["nonlinearity"] for o in next(iter(ranks.values()))["order"]]
        lines += [
            f"#### {m}",
            "",
            "| nonlinearity | " + " | ".join(f"r {b}" for b in band_labels) + " |",
            "|---|" + "---|" * len(band_labels),
        ]
        for nl in sorted(nls):
            cells = []
            for b in band_labels:
                o = next((o for o in ranks[b]["order"] if o["nonlinearity"] == nl), None) if b in ranks else None
                if o is None:
                    cells.append("–")
                    continue
                text = f"{_num(o['mean'])}{_ci(o['ci'])} ({o['rank']})"
                cells.append(f"**{text}**" if nl in ranks[b]["top_group"] else text)
            lines.append(f"| {nl} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _curves_section(f: dict) -> list[str]:
    st = f["settings"]
    design = st["design_measure"]
    lines = []
    for tau in st["taus"]:
        key = _tau_key(tau)
        curves = [c for c in f["curves"] if c["measure"] == design]
        kinds = list(dict.fromkeys(c["kind"] for c in curves))
        nls = list(dict.fromkeys(c["nonlinearity"] for c in curves))
        lines += [
            f"### Largest expansion ratio keeping {design} ≥ {tau}, main study (fitted curve / empirical)",
            "",
            "| nonlinearity | " + " | ".join(kinds) + " |",
            "|---|" + "---|" * len(kinds),
        ]
        for nl in nls:
            cells = []
            for kind in kinds:
                c = next((c for c in curves if c["kind"] == kind and c["nonlinearity"] == nl), None)
                cells.append(
                    "–"
                    if c is None
                    else f"{_ratio(c['thresholds'][key]['fit'])} / {_ratio(c['thresholds'][key]['empirical'])}"
                )
            lines.append(f"| {nl} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        f"Curve family: `{st['curve_family']}`; parameters, fit RMSE and the thresholds under every "
        "measure are in findings.json (`curves`).",
        "",
    ]
    return lines
