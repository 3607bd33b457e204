"""Training settings whose defaults depend on other settings, resolved in one place for the config
checks (emogrid.config, imported when Snakemake parses the workflow: no torch here) and for training.
"""

from __future__ import annotations

# A loss's `prior_bias_init` when its config leaves it out. Off for pure ASL: a bias at a label's prior
# (p ~ 0.04) sits under the clip margin (0.05), where negatives give no gradient, and the outputs drift
# to all-positive. On for BCE and the combined loss, whose BCE part keeps the negatives' gradient.
PRIOR_BIAS_INIT_DEFAULT = {"bce": True, "asl": False, "combined": True}


def loss_settings(loss: dict) -> dict:
    """A named loss with the defaults that depend on its type filled in (the schema fills the rest).
    A missing key is appended, so a loss that states it keeps its key order: Snakemake compares a
    cell's params by their repr, and a reordered dict would rerun every finished cell."""
    return {**loss, "prior_bias_init": loss.get("prior_bias_init", PRIOR_BIAS_INIT_DEFAULT[loss["type"]])}
