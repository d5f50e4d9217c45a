"""Renders a findings dict (`rankstudy.principles.find_principles`, schema docs/findings_schema.md) as
FINDINGS.md: verdicts on the paper's findings (§3, Figure 1) under normalised and bound-relative measures,
which conclusions are structural and which the nonlinearity's, where they depend on the input or the
other unstated factors, the design rules, rankings and thresholds."""

from .measures import BOUND_TWIN


def _tau_key(tau: float) -> str:
    return f"{tau:g}"


# --- Markdown --------------------------------------------------------------------------------------------


def _num(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci) -> str:
    return "" if ci is None or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _ratio(t: dict) -> str:
    if t["status"] == "above_range":
        return f"≥ {t['ratio']:.3g} (never below τ)"
    if t["status"] == "below_range":
        return "< smallest ratio"
    if t["status"] == "no_fit":
        return "no fit"
    return f"{t['ratio']:.3g}"


def findings_markdown(findings: dict) -> str:
    """Returns FINDINGS.md: the verdicts, the design rules, the rankings and thresholds, readable as text."""
    f, src, st = findings, findings["source"], findings["settings"]
    rec = f["recommendations"]
    basis = rec["basis"]
    config = src.get("config") or {}
    lines = [
        "# Rank study: findings",
        "",
        f"Source: {src['rows_used']} random networks (seed {src['seed']}), `{src['command']}`, created "
        f"{src['created']}. Findings written by `{f['command']}` at {f['created']} (findings schema "
        f"v{f['schema_version']}; versions: " + ", ".join(f"{k} {v}" for k, v in f["versions"].items()) + ").",
        "",
        f"Config: kinds {config.get('kinds')}, d_in {config.get('d_in')}, expansion ratio "
        f"{config.get('ratio_min')}–{config.get('ratio_max')} ({config.get('n_ratios')} log steps), nominal N/d_out "
        f"{config.get('n_over_d')} (judged by the measured N/d_out, binned: {_levels(f, 'n_over_d_bin')}), init "
        f"{config.get('inits')}, norm {config.get('norms')}, inputs {config.get('input_dists', config.get('input_dist'))}.",
        "",
        f"Measures: {', '.join(st['measures'])}. The `bound_relative_*` measures divide by min(d_out, structural "
        "bound) instead of d_out, where the structural bound is the largest rank the network's shapes allow "
        "whatever its nonlinearity (`rankstudy.bounds`; for a block min(d_out, N, (t + 1)·d_in)). Design rules "
        f"read from **{st['design_measure']}** (bound-relative: nonlinearity effects only). CIs: {st['ci_method']}, "
        f"{st['confidence']:.0%}. Significance: {st['significance']}. A difference counts only if ≥ "
        f"{st['material_difference']} and its CI excludes 0.",
        "",
        "## The paper's findings (§3, Figure 1)",
        "",
        "| finding | verdict | " + " | ".join(st["measures"]) + " |",
        "|---|---|" + "---|" * len(st["measures"]),
    ]
    for key, item in f["paper_findings"].items():
        lines.append(
            f"| ({key}) {item['claim']} | **{item['verdict']}** | "
            + " | ".join(item["by_measure"].get(m, "–") for m in st["measures"])
            + " |"
        )
    lines.append("")
    for key, item in f["paper_findings"].items():
        parts = item.get("parts", {"": item})
        for name, part in parts.items():
            title = f"({key}) {part['claim']}" + (f" — part `{name}`" if name else "")
            lines += [
                f"### {title}: {part['verdict']}",
                "",
                f"Tested as: {part['operationalised']}.",
                "",
                f"Where it holds: {part['summary']}.",
                "",
                "Differences pooled over the factors (mean [95% CI]; ✓ = holds):",
                "",
                "| kind | " + " | ".join(st["measures"]) + " |",
                "|---|" + "---|" * len(st["measures"]),
            ]
            kinds = list(dict.fromkeys(c["kind"] for c in part["cells"]))
            for kind in kinds:
                row = []
                for m in st["measures"]:
                    cell = next(
                        (c for c in part["cells"] if c["kind"] == kind and c["measure"] == m and c["factor"] == "all"),
                        None,
                    )
                    mark = "" if cell is None or cell["holds"] is None else " ✓" if cell["holds"] else " ✗"
                    row.append("–" if cell is None else f"{_num(cell['difference'])}{_ci(cell['ci'])}{mark}")
                lines.append(f"| {kind} | " + " | ".join(row) + " |")
            lines.append("")

    lines += _attribution_section(f) + _dependence_section(f)

    r = basis["recommended_nonlinearity"]
    lines += [
        "## Design rules (from bound-relative measures: nonlinearity effects only)",
        "",
        f"**Recommended nonlinearity after an expansion layer: `{rec['recommended_nonlinearity']}`** "
        f"(kind {r.get('kind')}, {r.get('rows')}, rows {r.get('design_rows')}; {r.get('rule')})."
        + (f" Statistically tied with: {', '.join(r['tied_with'])}." if r.get("tied_with") else ""),
        "",
        "| measure | best | not significantly below the best |",
        "|---|---|---|",
    ]
    for m, b in r.get("by_measure", {}).items():
        lines.append(f"| {m} | {b['best']} ({_num(b['means'][b['best']]['value'])}) | {', '.join(b['top_group'])} |")
    lines += [
        "",
        "Mean position over the measures: "
        + ", ".join(f"{nl} {p:.1f}" for nl, p in r.get("mean_position", {}).items())
        + ".",
        "",
    ]

    mx = basis["max_expansion_per_layer"]
    lines += [
        f"**Maximum expansion per layer** ({mx['nonlinearity']}, kind {mx['kind']}, measure {mx['measure']}, "
        "from the fitted curve; empirical = largest sampled ratio whose mean and all smaller ones "
        "are ≥ τ):",
        "",
        "| τ | max expansion (fit) | empirical | " + " | ".join(st["measures"]) + " (fit) |",
        "|---|---|---|" + "---|" * len(st["measures"]),
    ]
    for tau, t in mx["per_tau"].items():
        per = [_ratio(t["by_measure"][m]["fit"]) if m in t["by_measure"] else "–" for m in st["measures"]]
        emp = _ratio(t["empirical"]) if t.get("empirical") else "–"
        main = "–" if t["ratio"] is None else _ratio({"ratio": t["ratio"], "status": t["status"]})
        lines.append(f"| {tau} | **{main}** | {emp} | " + " | ".join(per) + " |")
    lines.append("")

    g = basis["gradual_expansion_beats_single"]
    if g.get("value") is None and "reason" in g:
        lines += [f"**Gradual vs one large expansion**: not tested ({g['reason']}).", ""]
    else:
        sc = g.get("structural_capacity") or {}
        struct = rec.get("structural") or {}
        lines += [
            f"**Gradual expansion over several blocks beats one large expansion, relative to the bound: "
            f"{g['value']}** ({g['comparison']}; {g['measure']}: {_num(g['difference'])}{_ci(g['ci'])}). "
            f"Structurally, a stack's bound allows more rank than one block's: mean min(1, bound/d_out) "
            f"stack − block = {_num(sc.get('value'))}{_ci(sc.get('ci'))} (raises the bound: "
            f"{struct.get('gradual_expansion_raises_bound')}); normalised by d_out (the v1 reading) the stack "
            f"beats the block: {struct.get('gradual_expansion_beats_single_normalized')}.",
            "",
            "| measure | all r > 1 | "
            + " | ".join(b["label"] for b in st["bands"] if b["low"] >= 1)
            + " | "
            + " | ".join(f"depth {d}" for d in sorted({x["depth"] for x in g["by_depth"]}))
            + " |",
        ]
        n_cols = 1 + sum(1 for b in st["bands"] if b["low"] >= 1) + len({x["depth"] for x in g["by_depth"]})
        lines.append("|---|" + "---|" * n_cols)
        for m, overall in g["by_measure"].items():
            cells = [f"{_num(overall['value'])}{_ci(overall['ci'])}"]
            for b in (b for b in st["bands"] if b["low"] >= 1):
                x = next((x for x in g["by_band"] if x["measure"] == m and x["band"] == b["label"]), None)
                cells.append("–" if x is None else _num(x["value"]))
            for d in sorted({x["depth"] for x in g["by_depth"]}):
                x = next(x for x in g["by_depth"] if x["measure"] == m and x["depth"] == d)
                cells.append(_num(x["value"]))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += [
        "## Nonlinearities ranked per expansion-ratio band (all kinds pooled)",
        "",
        "Normalised measures only (bound-relative rankings per kind are in findings.json `rankings`).",
        "",
        "Mean [95% CI] (rank); **bold** = not significantly below the band's best.",
        "",
    ]
    band_labels = [b["label"] for b in st["bands"]]
    for m in [m for m in st["measures"] if not m.startswith("bound_relative_")]:
        ranks = {x["band"]: x for x in f["rankings"] if x["measure"] == m and x["kind"] == "all"}
        if not ranks:
            continue
        nls = [o["nonlinearity"] for o in next(iter(ranks.values()))["order"]]
        lines += [
            f"### {m}",
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

    design = st["design_measure"]
    for tau in st["taus"]:
        key = _tau_key(tau)
        curves = [c for c in f["curves"] if c["measure"] == design]
        kinds = list(dict.fromkeys(c["kind"] for c in curves))
        nls = list(dict.fromkeys(c["nonlinearity"] for c in curves))
        lines += [
            f"## Largest expansion ratio keeping {design} ≥ {tau} (fitted curve / empirical)",
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
    return "\n".join(lines)


def _levels(findings: dict, factor: str) -> str:
    cells = findings["paper_findings"]["a"].get("cells", [])
    return ", ".join(sorted({c["level"] for c in cells if c["factor"] == factor})) or "–"


def _attribution_section(f: dict) -> list[str]:
    """Returns the section saying, per finding and kind, whether it is structural or the nonlinearity's."""
    pairs = list(BOUND_TWIN.items())
    lines = [
        "## Structural, or caused by the nonlinearity?",
        "",
        "Per finding and kind, pooled over the factors: **nonlinearity** = holds relative to the structural "
        "bound (the nonlinearity causes it); **structural** = holds normalised by d_out but not relative to "
        "the bound (the shapes alone cause it: it would hold for any nonlinearity); none = holds under "
        "neither.",
        "",
        "| finding | kind | " + " | ".join(m for m, _ in pairs) + " |",
        "|---|---|" + "---|" * len(pairs),
    ]
    tally: dict = {}
    for key, item in f["paper_findings"].items():
        parts = item.get("parts", {"": item})
        for name, part in parts.items():
            att = part.get("attribution", [])
            for kind in dict.fromkeys(a["kind"] for a in att):
                cells = []
                for m, _ in pairs:
                    a = next((a for a in att if a["kind"] == kind and a["measure"] == m), None)
                    cells.append("–" if a is None else f"**{a['cause']}**" if a["cause"] != "none" else "none")
                    if a is not None:
                        tally.setdefault((key, name, a["cause"]), []).append(f"{kind}/{m}")
                label = f"({key})" + (f" {name}" if name else "")
                lines.append(f"| {label} | {kind} | " + " | ".join(cells) + " |")
    lines.append("")
    for key, item in f["paper_findings"].items():
        for name in item.get("parts") or {"": None}:
            label = f"({key})" + (f" {name}" if name else "")
            structural = tally.get((key, name, "structural"), [])
            caused = tally.get((key, name, "nonlinearity"), [])
            lines.append(
                f"- {label}: caused by the nonlinearity in {len(caused)} kind/measure cells"
                + (f" ({', '.join(caused[:8])}{', …' if len(caused) > 8 else ''})" if caused else "")
                + f"; structural only in {len(structural)}"
                + (f" ({', '.join(structural[:8])}{', …' if len(structural) > 8 else ''})" if structural else "")
                + "."
            )
    return lines + [""]


def _dependence_section(f: dict) -> list[str]:
    """Returns the tables of each finding's verdict per level of the input distribution and of N/d_out."""
    st = f["settings"]
    lines = []
    for factor, title in (("input_dist", "input distribution"), ("n_over_d_bin", "measured N/d_out (binned)")):
        rows = []
        for key, item in f["paper_findings"].items():
            for name, part in (item.get("parts") or {"": item}).items():
                dep = (part.get("factor_dependence") or {}).get(factor)
                if not dep:
                    continue
                for level, verdicts in dep.items():
                    rows.append(
                        f"| ({key})"
                        + (f" {name}" if name else "")
                        + f" | {level} | "
                        + " | ".join(verdicts.get(m, "–").replace("_", " ") for m in st["measures"])
                        + " |"
                    )
        if rows:
            lines += [
                f"## Verdicts by {title}",
                "",
                "Each finding judged on the rows at one level only (all its kinds):",
                "",
                "| finding | level | " + " | ".join(st["measures"]) + " |",
                "|---|---|" + "---|" * len(st["measures"]),
                *rows,
                "",
            ]
    return lines
