"""Scanner acquisition effects, applied to ideal images in batches, and the intensity unit scenarios use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d

from sim.anatomy import (
    ANATOMY_UNIFORMS,
    TEXTURE_NORMALS,
    AnatomyParams,
    FloatArray,
    render_anatomy,
    smooth_texture,
)
from sim.specs import REFERENCE_MATRIX, Scanner

#: Fixed seed of the reference population behind :func:`mean_intensity_sd`, independent of any hospital
#: seed so "one SD" means the same thing in every run.
_REFERENCE_SEED = 20_250_106
_REFERENCE_STUDIES = 256


@dataclass(frozen=True)
class AcquisitionBatch:
    """Per-study acquisition settings; each field has shape (n,).

    Attributes:
        intensity_scale: Gain after the contrast curve.
        intensity_offset: Offset after the gain (scanner offset plus any planted shift or drift).
        noise_sd: Additive noise SD.
        blur_sigma_px: Detector blur in pixels.
        gamma: Contrast-curve exponent.
    """

    intensity_scale: NDArray[np.float64]
    intensity_offset: NDArray[np.float64]
    noise_sd: NDArray[np.float64]
    blur_sigma_px: NDArray[np.float64]
    gamma: NDArray[np.float64]

    @classmethod
    def from_scanners(
        cls, scanners: Sequence[Scanner], extra_offset: NDArray[np.float64] | None = None
    ) -> AcquisitionBatch:
        """Settings for studies acquired on ``scanners`` (one per study), plus optional offset shifts."""
        offset = np.array([s.intensity_offset for s in scanners], dtype=np.float64)
        if extra_offset is not None:
            offset = offset + extra_offset
        return cls(
            intensity_scale=np.array([s.intensity_scale for s in scanners], dtype=np.float64),
            intensity_offset=offset,
            noise_sd=np.array([s.noise_sd for s in scanners], dtype=np.float64),
            blur_sigma_px=np.array([s.blur_sigma_px for s in scanners], dtype=np.float64),
            gamma=np.array([s.gamma for s in scanners], dtype=np.float64),
        )

    def take(self, index: NDArray[np.intp] | slice) -> AcquisitionBatch:
        """The settings of a subset of studies."""
        return AcquisitionBatch(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})


def apply_acquisition(ideal: FloatArray, settings: AcquisitionBatch, noise: FloatArray | None) -> FloatArray:
    """Turn ideal images into acquired ones: blur, contrast curve, gain and offset, additive noise.

    Args:
        ideal: Ideal images, shape (n, H, W), values in [0, 1]. Not modified.
        settings: Per-study acquisition settings.
        noise: Standard normal noise of shape (n, H, W), or None for noise-free images. Passing the
            noise in keeps a study's noise identical whichever scanner acquires it.

    Returns:
        Float32 images of shape (n, H, W).
    """
    out = ideal.astype(np.float32, copy=True)
    for sigma in np.unique(settings.blur_sigma_px):
        if sigma <= 0.0:
            continue
        rows = np.flatnonzero(settings.blur_sigma_px == sigma)
        blurred = gaussian_filter1d(out[rows], float(sigma), axis=1, mode="nearest")
        out[rows] = gaussian_filter1d(blurred, float(sigma), axis=2, mode="nearest")
    curved = np.flatnonzero(settings.gamma != 1.0)
    if curved.size:
        gamma = settings.gamma[curved].astype(np.float32)[:, None, None]
        out[curved] = np.power(np.maximum(out[curved], np.float32(0.0)), gamma)
    out *= settings.intensity_scale.astype(np.float32)[:, None, None]
    out += settings.intensity_offset.astype(np.float32)[:, None, None]
    if noise is not None:
        out += settings.noise_sd.astype(np.float32)[:, None, None] * noise
    return out


def effective_spacing_mm(scanner: Scanner, image_size: int) -> float:
    """Pixel spacing at ``image_size``: the scanner's field of view resampled to that matrix."""
    return scanner.pixel_spacing_mm * REFERENCE_MATRIX / image_size


@lru_cache(maxsize=64)
def mean_intensity_sd(scanner: Scanner, image_size: int = REFERENCE_MATRIX) -> float:
    """SD of the per-image mean intensity across a fixed lesion-free reference population.

    This is the unit of ``intensity_shift_sd`` and ``sd_per_1000_studies`` in scenarios: a shift of one SD
    moves the mean-intensity drift descriptor by about one between-patient SD. The reference population is
    the same for every call (fixed seed), so the unit is deterministic; it is acquired noise-free because
    pixel noise barely moves an image mean.

    Args:
        scanner: The scanner whose images define the unit.
        image_size: Image side in pixels.
    """
    rng = np.random.default_rng(_REFERENCE_SEED)
    anatomy = AnatomyParams.from_uniforms(rng.random((_REFERENCE_STUDIES, ANATOMY_UNIFORMS)))
    normals = rng.standard_normal((_REFERENCE_STUDIES, TEXTURE_NORMALS), dtype=np.float32)
    texture = smooth_texture(normals, image_size)
    spacing = np.full(_REFERENCE_STUDIES, effective_spacing_mm(scanner, image_size))
    ideal = render_anatomy(anatomy, spacing, texture, image_size)
    acquired = apply_acquisition(ideal, AcquisitionBatch.from_scanners([scanner] * _REFERENCE_STUDIES), None)
    means = acquired.reshape(_REFERENCE_STUDIES, -1).mean(axis=1, dtype=np.float64)
    return float(np.std(means, ddof=1))
