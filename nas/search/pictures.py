"""Pictures of a search's results: every front trial drawn into RUN/pictures/, the model card of RUN/best/."""
from __future__ import annotations

import os
from typing import Any

from nas.diagram import draw_arch
from nas.export.card import write_card
from nas.latency.stage import profile_of
from nas.search.context import RunContext
from search_spaces import Arch

PICTURES = "pictures"


def trial_title(ctx: RunContext, trial: int) -> str:
    return f"{ctx.spec.name}: trial {trial} ({ctx.space.name})"


def front_pictures(ctx: RunContext, rows, latency_model) -> dict[int, tuple[str, str]]:
    """RUN/pictures/trial_N.svg and .png of every front trial; trial -> (SVG path relative to the run folder, PNG
    path)."""
    out = {}
    for r in rows:
        if not r.get("on_front") or not r.get("arch"):
            continue
        shown = [f"{o} {r[o]:.4g}" for o in ctx.objectives if isinstance(r.get(o), (int, float))]
        svg, png = draw_arch(Arch.from_string(r["arch"]), ctx.path(PICTURES, f"trial_{r['trial']}"), latency_model,
                             title=trial_title(ctx, r["trial"]), lines=[", ".join(shown)] if shown else None)
        out[r["trial"]] = (os.path.relpath(svg, ctx.dir), str(png))
    return out


def best_card(ctx: RunContext, summary: dict[str, Any], latency_model) -> list:
    """arch.svg, arch.png and README.md (the model card) beside the exported model in RUN/best/."""
    best = summary["best"]
    weights = "weights.pt" if os.path.isfile(ctx.path("best", "weights.pt")) else None
    return write_card(ctx.path("best"), Arch.from_string(best["arch"]), title=trial_title(ctx, best["trial"]),
                      summary=summary, trial=best["trial"], quality=ctx.task.quality,
                      search_mode=ctx.spec.search.mode, device=profile_of(ctx.spec.hardware).key(),
                      latency_model=latency_model, weights=weights)
