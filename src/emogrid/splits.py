"""Fold arithmetic of a split drawn here (ISEAR): standard library only, as the workflow's config check
and the reader both use it."""

from __future__ import annotations

# An unsplit (ISEAR-like) file is split in whole folds of respondents: test is one of k folds, validation
# one of m folds of the rest (readers/isear.py). Requested fractions further than this from what folds
# give are refused rather than silently rounded.
FRACTION_TOLERANCE = 0.02


def split_folds(fractions: dict) -> tuple[int, int]:
    """(k, m): test is one of k folds of the respondents, validation one of m folds of the rest."""
    folds_test = max(2, round(1 / fractions["test"]))
    validation_share = fractions["validation"] / (fractions["train"] + fractions["validation"])
    return folds_test, max(2, round(1 / validation_share))


def achieved_fractions(fractions: dict) -> dict[str, float]:
    """The shares of respondents that `split_folds` gives each split (rows follow them roughly)."""
    folds_test, folds_validation = split_folds(fractions)
    test = 1 / folds_test
    validation = (1 - test) / folds_validation
    return {"train": 1 - test - validation, "validation": validation, "test": test}
