"""How sure a query is that the collection holds a match: ``explain["confidence"]`` in [0, 1].

CLIP search always returns a ranked list, even when nothing in the collection matches; the best
of those irrelevant images then looks as confident as a real match. The confidence says which
case a query is in: a logistic of the query's **best score** (within its filters; for a "more
like this" query, leaving the image itself out)::

    confidence = 1 / (1 + exp(-(best - centre) / step))

with ``centre`` (the best score at which confidence is 0.5) and ``step`` (the score change that
moves it by one logit) per model and score scale: scores of text↔image and image↔image
comparisons live on different scales (:mod:`search.engine`). ``explain["no_match"]`` is true
when the confidence is below ``search.no_match_threshold`` (0.5).

Why the raw best score and not a background distribution: on the synthetic domain
(``bench/bench_no_match.py``), normalising the best score by the same query's scores on a random
sample of the collection (z-score, or distance above the sample's median or 99th percentile)
separated absent from present concepts worse (ROC AUC 0.54–0.81 for text queries, 1500 images)
than the best score alone (0.89): a query for a concept that is present also scores higher on
the rest of the collection, so the background moves with the match. The calibration is a
property of the model, measured once, not of each query.

The built-in values for ``anyshot-tiny`` are fitted on that benchmark (equal numbers of present
and absent concepts, collections of 300 and 1500 images, a seed the evaluation does not use):
the best score grows with the number of images that could match, so one size alone gives a
centre too high for small collections. For other models the built-in values
are the text↔image and image↔image score levels commonly seen with OpenAI-style CLIP models, not
measured here: for a model you rely on, ask queries you know to be present or absent with
``explain=True``, fit a logistic of ``explain["best_score"]`` on them
(``bench/bench_no_match.py``'s ``fit_logistic`` returns ``(centre, step)``), and set
``search.confidence_calibration``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from indexer.errors import QueryError
from search.domain_words import TINY_MODEL

CALIBRATIONS: dict[str, dict[str, tuple[float, float]]] = {
    # Fitted by bench/bench_no_match.py --fit (seed 1; collections of 300 and 1500 images).
    TINY_MODEL: {
        "text-image": (0.478, 0.0115),
        "image-image": (0.778, 0.0429),
        "mixed": (0.628, 0.0272),  # halfway: not fitted (no mixed queries in the benchmark)
    },
    # Other models: CLIP-like score levels, a starting point rather than a measurement.
    "*": {
        "text-image": (0.260, 0.015),
        "image-image": (0.800, 0.030),
        "mixed": (0.530, 0.022),
    },
}
"""Per model name (``*``: any other), per score scale: ``(centre, step)``."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """The logistic that turns a best score into a confidence.

    Attributes:
        centre: The best score whose confidence is 0.5.
        step: How much the score must rise to add one logit (``> 0``).
        source: ``built-in:MODEL`` or ``settings``.
    """

    centre: float
    step: float
    source: str

    def confidence(self, best: float) -> float:
        """The confidence of a query whose best score is ``best``."""
        logit = (best - self.centre) / self.step
        if logit < -60:  # exp overflows far below: the confidence is 0 to any precision
            return 0.0
        return 1.0 / (1.0 + math.exp(-logit))


def calibration_for(
    model: str, scale: str, overrides: Mapping[str, tuple[float, float]] | None = None
) -> Calibration:
    """The calibration of a model's scores on a scale: ``overrides`` first, then built-in."""
    if overrides and scale in overrides:
        centre, step = overrides[scale]
        return Calibration(float(centre), float(step), "settings")
    key = model if model in CALIBRATIONS else "*"
    centre, step = CALIBRATIONS[key][scale]
    return Calibration(centre, step, f"built-in:{key}")


def check_min_confidence(value: float | None) -> float | None:
    """Refuse a minimum confidence outside [0, 1] in one line.

    Raises:
        QueryError: Not a finite number in [0, 1].
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError(f"min_confidence is a number in [0, 1], not {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise QueryError(f"min_confidence lies in [0, 1], not {value}")
    return float(value)


def no_confidence(explain: dict[str, Any]) -> dict[str, Any]:
    """``explain`` of an answer without a query vector (a listing by filters, a search by the
    text inside images): ``confidence`` null and ``no_match`` false, since nothing was
    compared."""
    explain.setdefault("confidence", None)
    explain.setdefault("no_match", False)
    return explain
