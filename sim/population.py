"""Patient demographics and who has a lesion, sampled from uniforms so every study's draw is reproducible."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from sim.specs import Population, Prevalence, Sex


def sample_sexes(u: NDArray[np.float64], population: Population) -> list[Sex]:
    """Sex per study: female when the uniform falls below ``female_fraction``."""
    return ["F" if value < population.female_fraction else "M" for value in u]


def sample_ages(u: NDArray[np.float64], population: Population) -> NDArray[np.int64]:
    """Integer ages from a normal distribution truncated to ``[age_min, age_max]`` (inverse-CDF sampling).

    Truncating by inverse CDF, rather than clipping, avoids piling patients up at the bounds.
    """
    low = (population.age_min - 0.5 - population.age_mean) / population.age_sd
    high = (population.age_max + 0.5 - population.age_mean) / population.age_sd
    cdf_low, cdf_high = ndtr(low), ndtr(high)
    z = ndtri(cdf_low + u * (cdf_high - cdf_low))
    ages = np.rint(population.age_mean + population.age_sd * z).astype(np.int64)
    clipped: NDArray[np.int64] = np.clip(ages, population.age_min, population.age_max)
    return clipped


def prevalences(
    prevalence: Sequence[Prevalence],
    sexes: Sequence[Sex],
    ages: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Per-study probability of a lesion, each study under its own (phase-dependent) prevalence model."""
    return np.array(
        [model.probability(sex, int(age)) for model, sex, age in zip(prevalence, sexes, ages, strict=True)],
        dtype=np.float64,
    )
