"""Placeholder scoring rule (version 2): another fixed linear function of mean image intensity.

Deterministic and dependency-light so the stack's smoke tests can compute the expected
answer in-process and compare it with what Triton returns.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WEIGHT = -3.0
BIAS = 1.5


def score_batch(images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Return one logit per image, shape (batch, 1), float32."""
    batch = images.reshape(images.shape[0], -1).astype(np.float64)
    logits = WEIGHT * batch.mean(axis=1) + BIAS
    return logits.astype(np.float32).reshape(-1, 1)
