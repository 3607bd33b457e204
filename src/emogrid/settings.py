"""Training settings whose defaults depend on other settings, resolved in one place for the config
checks (emogrid.config, imported when Snakemake parses the workflow: no torch here) and for training.
"""

from __future__ import annotations

# What the scheduler gets (the train rule's threads and resources), not what training computes. They
# stay out of the cell file, so raising a time limit or a memory request does not rewrite the cells
# and rerun (and re-predict) every finished one. `gpus` stays in: it sets the global batch size.
SCHEDULER_ONLY = ("threads", "mem_mb", "runtime")
# Training settings added after results existed, with their schema defaults: a cell (and the recorded
# config) names them only when they differ from it, so cells made before them keep their files and are
# not retrained. Code reading a cell takes the default when the key is absent.
NAMED_WHEN_NOT_DEFAULT = {"pad_to_multiple_of": None, "torch_compile": None, "keep_checkpoints": "weights"}

# A loss's `prior_bias_init` when its config leaves it out. Off for pure ASL: a bias at a label's prior
# (p ~ 0.04) sits under the clip margin (0.05), where negatives give no gradient, and the outputs drift
# to all-positive. On for BCE and the combined loss, whose BCE part keeps the negatives' gradient.
PRIOR_BIAS_INIT_DEFAULT = {"bce": True, "asl": False, "combined": True}
# The generator writes this file beside each dataset's files it makes (emogrid.synthetic.write_corpus);
# emogrid.config.check_config refuses a source_dir holding it outside the run's {results}/synthetic/.
SYNTHETIC_MARKER = "SYNTHETIC_DATA.txt"
# The keys each loss type reads (emogrid.losses.build_loss); the config check refuses the others.
ASL_KEYS = ("gamma_neg", "gamma_pos", "clip", "eps")
LOSS_KEYS = {
    "bce": ("type", "prior_bias_init"),
    "asl": ("type", *ASL_KEYS, "prior_bias_init"),
    "combined": ("type", "ratio", *ASL_KEYS, "prior_bias_init"),
}


def loss_settings(loss: dict) -> dict:
    """A named loss with the defaults that depend on its type filled in (the schema fills the rest).
    A missing key is appended, so a loss that states it keeps its key order: Snakemake compares a
    cell's params by their repr, and a reordered dict would rerun every finished cell."""
    return {**loss, "prior_bias_init": loss.get("prior_bias_init", PRIOR_BIAS_INIT_DEFAULT[loss["type"]])}
