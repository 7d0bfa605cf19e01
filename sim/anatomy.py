"""Chest-radiograph-like anatomy, rendered for a whole batch of studies at once.

Geometry is laid out in millimetres around the image centre (x to the image right, y downwards) and sampled
at each study's pixel spacing, so a scanner with coarser pixels sees the same chest smaller. Intensities are
in "ideal" units, roughly 0 (air outside the body) to 1 (dense bone), before any scanner effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]

#: Uniform draws consumed per study by :meth:`AnatomyParams.from_uniforms`.
ANATOMY_UNIFORMS = 10
#: Coefficients per axis of the coarse and the fine smooth-texture fields.
TEXTURE_COARSE = 6
TEXTURE_FINE = 16
#: Standard normals one study consumes for its texture fields.
TEXTURE_NORMALS = TEXTURE_COARSE * TEXTURE_COARSE + TEXTURE_FINE * TEXTURE_FINE
#: (direction from the midline, width factor) of the image-left and image-right lung; the image-right
#: (patient's left) lung is narrower because the heart sits there.
LUNG_SIDES = ((-1.0, 1.0), (1.0, 0.92))
#: Lung width at the apex as a fraction of the width at the base.
APEX_WIDTH_FRACTION = 0.62


@dataclass(frozen=True)
class AnatomyParams:
    """Per-study body habitus; every field is an array of shape (n,).

    Attributes:
        lung_offset_x_mm: Lateral offset of each lung centre from the midline.
        lung_centre_y_mm: Vertical position of the lung centres.
        lung_half_width_mm: Half-width of a lung at its base.
        lung_half_height_mm: Half-height of a lung.
        lung_depth: How much darker aerated lung is than soft tissue (inspiration depth).
        rib_period_mm: Spacing between neighbouring ribs.
        rib_phase: Phase of the rib pattern, in radians.
        heart_scale: Relative heart size.
        body_half_width_mm: Half-width of the thorax.
        tissue_level: Soft-tissue brightness.
    """

    lung_offset_x_mm: NDArray[np.float64]
    lung_centre_y_mm: NDArray[np.float64]
    lung_half_width_mm: NDArray[np.float64]
    lung_half_height_mm: NDArray[np.float64]
    lung_depth: NDArray[np.float64]
    rib_period_mm: NDArray[np.float64]
    rib_phase: NDArray[np.float64]
    heart_scale: NDArray[np.float64]
    body_half_width_mm: NDArray[np.float64]
    tissue_level: NDArray[np.float64]

    @classmethod
    def from_uniforms(cls, u: NDArray[np.float64]) -> AnatomyParams:
        """Map uniforms of shape (n, ANATOMY_UNIFORMS) onto plausible adult chests."""
        if u.ndim != 2 or u.shape[1] != ANATOMY_UNIFORMS:
            raise ValueError(f"anatomy uniforms must have shape (n, {ANATOMY_UNIFORMS}), got {u.shape}")

        def span(col: int, low: float, high: float) -> NDArray[np.float64]:
            return low + (high - low) * u[:, col]

        return cls(
            lung_offset_x_mm=span(0, 64.0, 78.0),
            lung_centre_y_mm=span(1, -22.0, -8.0),
            lung_half_width_mm=span(2, 48.0, 60.0),
            lung_half_height_mm=span(3, 92.0, 112.0),
            lung_depth=span(4, 0.24, 0.34),
            rib_period_mm=span(5, 21.0, 27.0),
            rib_phase=span(6, 0.0, 2.0 * np.pi),
            heart_scale=span(7, 0.85, 1.15),
            body_half_width_mm=span(8, 140.0, 170.0),
            tissue_level=span(9, 0.38, 0.48),
        )

    def __len__(self) -> int:
        return int(self.lung_offset_x_mm.shape[0])

    def take(self, index: NDArray[np.intp]) -> AnatomyParams:
        """The parameters of a subset of studies."""
        return AnatomyParams(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})


def pixel_grid_mm(spacing_mm: NDArray[np.float64], size: int) -> tuple[FloatArray, FloatArray]:
    """Pixel-centre coordinates in mm for each study: x of shape (n, 1, size), y of shape (n, size, 1)."""
    centre = (size - 1) / 2.0
    offsets = (np.arange(size, dtype=np.float64) - centre)[None, :]
    coords = (offsets * spacing_mm[:, None]).astype(np.float32)
    return coords[:, None, :], coords[:, :, None]


def _sigmoid(z: FloatArray) -> FloatArray:
    # tanh form: no overflow warnings for large |z| and stays in float32.
    out: FloatArray = np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * z))
    return out


def _col(values: NDArray[np.float64]) -> FloatArray:
    """Shape (n,) → (n, 1, 1) float32 for broadcasting against images."""
    return values.astype(np.float32)[:, None, None]


def lung_fields(params: AnatomyParams, spacing_mm: NDArray[np.float64], size: int) -> FloatArray:
    """Soft masks (0..1) of both lung fields, shape (n, size, size).

    Each lung is an ellipse that narrows towards the apex (see :data:`LUNG_SIDES`).
    """
    x, y = pixel_grid_mm(spacing_mm, size)
    centre_y = _col(params.lung_centre_y_mm)
    half_h = _col(params.lung_half_height_mm)
    # 0 at the apex, 1 at the base: lungs are narrower at the top.
    t = np.clip((y - (centre_y - half_h)) / (np.float32(2.0) * half_h), 0.0, 1.0)
    dy2 = ((y - centre_y) / half_h) ** 2
    fields = np.zeros((len(params), size, size), dtype=np.float32)
    apex = np.float32(APEX_WIDTH_FRACTION)
    for side, narrowing in LUNG_SIDES:
        half_w = _col(params.lung_half_width_mm * narrowing) * (apex + (np.float32(1.0) - apex) * t)
        dx2 = ((x - _col(side * params.lung_offset_x_mm)) / half_w) ** 2
        fields += _sigmoid((np.float32(1.0) - dx2 - dy2) * np.float32(9.0))
    return np.minimum(fields, np.float32(1.0))


@lru_cache(maxsize=16)
def _texture_basis(size: int, count: int) -> FloatArray:
    """Smooth Gaussian bumps on a regular lattice; rows are normalised so the field has unit variance."""
    step = size / (count - 1)
    centres = np.linspace(-0.5 * step, size - 1 + 0.5 * step, count)
    pixels = np.arange(size, dtype=np.float64)[:, None]
    basis = np.exp(-0.5 * ((pixels - centres[None, :]) / (0.9 * step)) ** 2)
    basis /= np.sqrt((basis**2).sum(axis=1, keepdims=True))
    out: FloatArray = basis.astype(np.float32)
    out.setflags(write=False)
    return out


def smooth_texture(normals: FloatArray, size: int) -> FloatArray:
    """Two-scale smooth random field of shape (n, size, size) from per-study standard normals.

    Args:
        normals: Array of shape (n, TEXTURE_NORMALS).
        size: Image side in pixels.
    """
    n = normals.shape[0]
    coarse_count = TEXTURE_COARSE * TEXTURE_COARSE
    coarse = normals[:, :coarse_count].reshape(n, TEXTURE_COARSE, TEXTURE_COARSE)
    fine = normals[:, coarse_count:].reshape(n, TEXTURE_FINE, TEXTURE_FINE)
    field = np.zeros((n, size, size), dtype=np.float32)
    # Weights 0.9 and sqrt(1 - 0.81): unit total variance, mostly at the coarse scale so that the fine
    # field does not mimic nodules.
    for coeffs, weight, count in ((coarse, 0.9, TEXTURE_COARSE), (fine, 0.19**0.5, TEXTURE_FINE)):
        basis = _texture_basis(size, count)
        # B @ Z @ B^T: a separable expansion, far cheaper than filtering white noise at full resolution.
        field += np.float32(weight) * (basis @ coeffs.astype(np.float32) @ basis.T)
    return field


def render_anatomy(
    params: AnatomyParams, spacing_mm: NDArray[np.float64], texture: FloatArray, size: int
) -> FloatArray:
    """Ideal lesion-free chest images, shape (n, size, size), values clipped to [0, 1].

    Args:
        params: Per-study anatomy.
        spacing_mm: Per-study pixel spacing, shape (n,).
        texture: Smooth random field from :func:`smooth_texture`, shape (n, size, size).
        size: Image side in pixels.
    """
    x, y = pixel_grid_mm(spacing_mm, size)
    one = np.float32(1.0)

    body_half_w = _col(params.body_half_width_mm)
    body_y2 = ((y - np.float32(30.0)) / np.float32(240.0)) ** 2
    body = _sigmoid((one - (x / body_half_w) ** 2 - body_y2) * np.float32(8.0))
    # Soft tissue is thicker towards the abdomen and the midline, so it is brighter there.
    tissue = (
        _col(params.tissue_level)
        + np.float32(0.10) * (y / np.float32(200.0))
        + np.float32(0.08) * (one - (x / body_half_w) ** 2)
    )
    mediastinum = np.exp(-((x / np.float32(32.0)) ** 2)) * _sigmoid((y + np.float32(110.0)) / np.float32(8.0))
    spine = np.exp(-((x / np.float32(13.0)) ** 4))

    heart_scale = _col(params.heart_scale)
    heart_x = (x - np.float32(24.0) * heart_scale) / (np.float32(58.0) * heart_scale)
    heart_y = (y - _col(params.lung_centre_y_mm) - np.float32(62.0)) / (np.float32(46.0) * heart_scale)
    heart = _sigmoid((one - heart_x**2 - heart_y**2) * np.float32(6.0))

    lungs = lung_fields(params, spacing_mm, size)
    # Posterior ribs: equally spaced bands that curve downwards away from the spine.
    rib_position = (y - np.float32(0.0042) * x**2) / _col(params.rib_period_mm)
    rib_wave = np.cos(np.float32(2 * np.pi) * rib_position + _col(params.rib_phase))
    ribs = (one + rib_wave) * np.float32(0.5)
    ribs = ribs * ribs  # raising to the 6th power by multiplication: np.power is several times slower
    ribs = ribs * ribs * ribs

    image = np.float32(0.06) + body * (
        tissue + np.float32(0.20) * mediastinum + np.float32(0.10) * spine + np.float32(0.10) * heart
    )
    aerated = lungs * (one - np.float32(0.85) * heart)
    image -= _col(params.lung_depth) * aerated
    image += np.float32(0.06) * ribs * aerated
    image += np.float32(0.03) * texture * body
    clipped: FloatArray = np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
    return clipped
