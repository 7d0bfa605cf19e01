"""Nodule-like lesions: where they sit in the lungs, how big and bright they are, and how they are drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.anatomy import APEX_WIDTH_FRACTION, LUNG_SIDES, AnatomyParams, FloatArray
from sim.specs import LesionModifier, LesionSpec, Sex

#: Uniform draws consumed per study by :func:`draw_lesions`.
LESION_UNIFORMS = 5
#: Lesions are centred within this fraction of the lung's elliptical radius, so they sit well inside it.
_PLACEMENT_RADIUS = 0.6
#: FWHM of a Gaussian is 2·sqrt(2·ln 2)·sigma; a lesion's stated diameter is its FWHM.
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class Lesion:
    """Ground truth of the nodule in one study.

    Attributes:
        present: Whether the study contains a lesion (equals the study label).
        center_row: Lesion centre row, in pixels (None when absent).
        center_col: Lesion centre column, in pixels (None when absent).
        size_mm: Lesion diameter (full width at half maximum), in mm.
        contrast: Peak added intensity, in ideal-image units, before scanner effects.
        subgroups: Names of the lesion modifiers that made this lesion harder to see.
    """

    present: bool
    center_row: float | None = None
    center_col: float | None = None
    size_mm: float | None = None
    contrast: float | None = None
    subgroups: tuple[str, ...] = ()


NO_LESION = Lesion(present=False)


@dataclass(frozen=True)
class LesionGeometry:
    """Lesion position and appearance for a batch; each field has shape (n,)."""

    x_mm: NDArray[np.float64]
    y_mm: NDArray[np.float64]
    size_mm: NDArray[np.float64]
    contrast: NDArray[np.float64]


def draw_lesions(u: NDArray[np.float64], anatomy: AnatomyParams, spec: LesionSpec) -> LesionGeometry:
    """Place one candidate lesion per study inside a lung field, before any subgroup modifier.

    Args:
        u: Uniforms of shape (n, LESION_UNIFORMS): lung side, radius, angle, size, contrast.
        anatomy: The studies' anatomy, so the lesion lands inside that patient's lungs.
        spec: Size and contrast ranges.
    """
    if u.ndim != 2 or u.shape[1] != LESION_UNIFORMS:
        raise ValueError(f"lesion uniforms must have shape (n, {LESION_UNIFORMS}), got {u.shape}")
    right = u[:, 0] >= 0.5
    direction = np.where(right, LUNG_SIDES[1][0], LUNG_SIDES[0][0])
    narrowing = np.where(right, LUNG_SIDES[1][1], LUNG_SIDES[0][1])
    # sqrt makes the centre uniform over the inner disc of the normalised ellipse.
    radius = _PLACEMENT_RADIUS * np.sqrt(u[:, 1])
    angle = 2.0 * np.pi * u[:, 2]
    half_h = anatomy.lung_half_height_mm
    dy = radius * np.sin(angle) * half_h
    y = anatomy.lung_centre_y_mm + dy
    # Same apex narrowing as anatomy.lung_fields, evaluated at the lesion's height.
    t = np.clip((dy + half_h) / (2.0 * half_h), 0.0, 1.0)
    half_w = anatomy.lung_half_width_mm * narrowing * (APEX_WIDTH_FRACTION + (1.0 - APEX_WIDTH_FRACTION) * t)
    x = direction * anatomy.lung_offset_x_mm + radius * np.cos(angle) * half_w
    size = spec.size_mm_min * (spec.size_mm_max / spec.size_mm_min) ** u[:, 3]
    contrast = spec.contrast_min + (spec.contrast_max - spec.contrast_min) * u[:, 4]
    return LesionGeometry(x_mm=x, y_mm=y, size_mm=size, contrast=contrast)


def modifier_effect(
    modifiers: Sequence[LesionModifier],
    sex: Sex,
    age: int,
) -> tuple[float, float, tuple[str, ...]]:
    """Combined (contrast scale, size scale, subgroup names) of the modifiers that match a patient."""
    contrast_scale = 1.0
    size_scale = 1.0
    names: list[str] = []
    for modifier in modifiers:
        if modifier.matches(sex, age):
            contrast_scale *= modifier.contrast_scale
            size_scale *= modifier.size_scale
            names.append(modifier.subgroup)
    return contrast_scale, size_scale, tuple(names)


def mm_to_pixel(
    coord_mm: NDArray[np.float64],
    spacing_mm: NDArray[np.float64],
    size: int,
) -> NDArray[np.float64]:
    """Convert centre-relative mm coordinates to pixel indices (row or column)."""
    result: NDArray[np.float64] = coord_mm / spacing_mm + (size - 1) / 2.0
    return result


def render_lesions(
    images: FloatArray,
    geometry: LesionGeometry,
    spacing_mm: NDArray[np.float64],
    size: int,
) -> None:
    """Add a Gaussian blob per image, in place.

    Args:
        images: Ideal images of shape (n, size, size), modified in place.
        geometry: One lesion per image.
        spacing_mm: Per-image pixel spacing, shape (n,).
        size: Image side in pixels.
    """
    if images.shape[0] == 0:
        return
    sigma_px = geometry.size_mm / _FWHM_PER_SIGMA / spacing_mm
    rows = mm_to_pixel(geometry.y_mm, spacing_mm, size)
    cols = mm_to_pixel(geometry.x_mm, spacing_mm, size)
    pixels = np.arange(size, dtype=np.float64)[None, :]
    # The blob is separable: outer product of a row and a column profile.
    row_profile = np.exp(-0.5 * ((pixels - rows[:, None]) / sigma_px[:, None]) ** 2)
    col_profile = np.exp(-0.5 * ((pixels - cols[:, None]) / sigma_px[:, None]) ** 2)
    blobs = (geometry.contrast[:, None] * row_profile)[:, :, None] * col_profile[:, None, :]
    images += blobs.astype(np.float32)
