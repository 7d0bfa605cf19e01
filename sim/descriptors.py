"""Per-image intensity statistics, vectorised over a batch: the drift monitors' image descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Descriptor names, in the column order of :meth:`IntensityDescriptors.as_matrix`.
DESCRIPTOR_NAMES = ("mean", "std", "p5", "p50", "p95", "skewness")
_CHUNK = 64


@dataclass(frozen=True)
class IntensityDescriptors:
    """Intensity statistics of n images; each field has shape (n,).

    Attributes:
        mean: Mean pixel value.
        std: Population SD of the pixel values.
        p5: 5th percentile (linear interpolation).
        p50: Median.
        p95: 95th percentile.
        skewness: Moment skewness ``E[(x - mean)^3] / std^3`` (0 for a constant image).
    """

    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    p5: NDArray[np.float64]
    p50: NDArray[np.float64]
    p95: NDArray[np.float64]
    skewness: NDArray[np.float64]

    def as_matrix(self) -> NDArray[np.float64]:
        """Descriptors as an (n, 6) matrix, columns in :data:`DESCRIPTOR_NAMES` order."""
        return np.stack([getattr(self, name) for name in DESCRIPTOR_NAMES], axis=1)

    def as_columns(self) -> dict[str, NDArray[np.float64]]:
        """Descriptors as a name → array mapping (e.g. for a DataFrame)."""
        return {name: getattr(self, name) for name in DESCRIPTOR_NAMES}


def intensity_descriptors(images: NDArray[np.floating[Any]]) -> IntensityDescriptors:
    """Compute intensity descriptors for a batch of images.

    Args:
        images: Array of shape (n, ...): every axis after the first is pooled, so (n, 1, H, W) and
            (n, H, W) both work.

    Returns:
        One value per image for each descriptor, computed in float64.

    Raises:
        ValueError: If the batch is empty per image or contains non-finite values.
    """
    if images.ndim < 2 or images.shape[0] == 0 or images[0].size == 0:
        raise ValueError(f"images must have shape (n, ...) with n >= 1 and pixels, got {images.shape}")
    flat = images.reshape(images.shape[0], -1)
    columns = {name: np.empty(flat.shape[0], dtype=np.float64) for name in DESCRIPTOR_NAMES}
    # Chunks keep the float64 temporaries cache-sized; whole-batch expressions are several times slower.
    for start in range(0, flat.shape[0], _CHUNK):
        part = slice(start, start + _CHUNK)
        values = flat[part].astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("images contain NaN or infinite values")
        mean = values.mean(axis=1)
        centred = values - mean[:, None]
        squared = centred * centred
        variance = squared.mean(axis=1)
        third = (squared * centred).mean(axis=1)
        flat_image = variance <= 0.0
        columns["mean"][part] = mean
        columns["std"][part] = np.sqrt(variance)
        safe_variance = np.where(flat_image, 1.0, variance)
        columns["skewness"][part] = np.where(flat_image, 0.0, third / safe_variance**1.5)
        columns["p5"][part], columns["p50"][part], columns["p95"][part] = np.percentile(
            values, [5.0, 50.0, 95.0], axis=1
        )
    return IntensityDescriptors(**columns)
