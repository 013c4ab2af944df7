"""``report.md`` of a `mfgx generate` run: settings, training, held-out metrics with their meaning,
timings and figures."""

from __future__ import annotations

import json
from pathlib import Path

from .. import _atomic

MEANINGS = {
    "nll": "negative log-likelihood of test data, nats per sample (CNF: exact trace; SGM: PF-ODE)",
    "nll_se": "its standard error over test samples",
    "bits_per_dim": "NLL / (d ln 2)",
    "kl_gap": "entropy floor's gap: mean(log p_data − log p_model) = KL(data ‖ model) estimate",
    "kl_gap_se": "its standard error",
    "C": "terminal cost: per-sample NLL through the flow (nats)",
    "L": "kinetic cost E∫½|v|² dt",
    "R": "HJB residual along the paths, E∫|−∂ₜΦ + |∇Φ|²/(2α_L) − f′| dt",
    "RT": "terminal HJB residual E|Φ(x_T, T) − α_G(G + 1)|",
    "G": "terminal cost E[log ρ_T − log ρ₁] (KL to the target with the source density)",
    "F": "running cost (obstacle + congestion)",
    "E": "energy term of the JKO step",
    "loss": "the problem's objective on test data",
    "straightness": "E[L] / E[½|x(T) − x(0)|²/T]: 1 for straight paths at constant speed, larger when curved",
    "inverse_error": "mean ‖x − f⁻¹(f(x))‖₂",
    "kinetic_bound": "W₂²(ρ₀, ρ₁)/(2T): the kinetic cost of exact transport",
    "kinetic_over_bound": "L / bound (≈ 1 at the OT optimum; < 1 possible with a soft KL terminal cost)",
    "dsm": "denoising score-matching loss at forward samples of test data",
    "hjb": "HJB residual E|R_θ|² at forward samples of test data (exact divergence)",
    "kl_to_target": "KL(ρ_K ‖ π) of the training particles after the chain",
    "mean_error": "‖mean − exact JKO chain's mean‖",
    "cov_error": "relative Frobenius error of the covariance against the exact chain",
    "mmd2": "MMD² (unbiased, RBF mixture 0.1…5) samples vs reference",
    "mmd2_otflow": "OT-Flow's MMD² (biased, kernel exp(−‖x − y‖²))",
    "sliced_w2": "sliced W₂ (256 directions)",
    "energy_distance": "energy distance",
    "w2_exact": "exact W₂ by POT's network simplex on n_exact samples",
}


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (pipes escaped)."""
    return text.replace("|", "\\|")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def write_report(config, summary: dict, files: list, out: Path) -> Path:
    """Write ``out``/report.md and return its path."""
    tr, tm, data, held = summary["training"], summary["timing"], summary["data"], summary["held_out"]
    resumed = f" (resumed from step {tr['resumed_from_step']})" if tr["resumed_from_step"] else ""
    sel = f"; model selected on {tr['selected_on']} (step {tr['best_step']})" if "selected_on" in tr else ""
    lines = [
        f"# mfgx generate: `{config.problem}` on `{config.data['name']}`",
        "",
        *(["**Quick mode**: tiny sizes and a few steps, a smoke run; the numbers mean nothing.", ""] if config.quick else []),
        f"Data: d = {data['dim']}; train {data['n_train']}, validation {data['n_val']}, test {data['n_test']}"
        + (" (standardised by the training mean and std; metrics in those coordinates)" if data["standardized"] else "")
        + f"; seed {config.seed}.",
        f"Training: {tr['steps_run']} steps{resumed}{sel}; final batch objective {_fmt(tr['final_loss'])}.",
        f"Time: training {tm['train_wall_s_this_run']:.1f} s this run (first step, with compilation, "
        f"{_fmt(tm['first_step_s'])} s; median step {_fmt(tm['step_s_median'])} s), evaluation {tm['evaluation_s']:.1f} s "
        "(a shared CPU: timings are noisy).",
        "",
        "## Held-out metrics",
        "",
        "| metric | value | meaning |",
        "|---|---|---|",
        *[f"| {k} | {_fmt(v)} | {_cell(MEANINGS.get(k, ''))} |" for k, v in held.items()],
        "",
        "## Figures",
        "",
        *[f"![{p.stem}](figures/{p.name})" for p in files if p.suffix in (".png", ".gif")],
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(config.settings(), indent=1, default=str),
        "```",
        "",
    ]
    return _atomic.write_text(out / "report.md", "\n".join(lines))
