"""Anatomy and lesion rendering: shapes, plausible structure, lesions inside the lungs at the stated size."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from sim.anatomy import (
    ANATOMY_UNIFORMS,
    TEXTURE_NORMALS,
    AnatomyParams,
    lung_fields,
    render_anatomy,
    smooth_texture,
)
from sim.lesions import LESION_UNIFORMS, LesionGeometry, draw_lesions, mm_to_pixel, render_lesions
from sim.specs import LesionSpec

SIZE = 128


def _anatomy(n: int, seed: int = 0) -> tuple[AnatomyParams, NDArray[np.float64], NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    params = AnatomyParams.from_uniforms(rng.random((n, ANATOMY_UNIFORMS)))
    spacing = rng.uniform(2.8, 3.2, size=n)
    texture = smooth_texture(rng.standard_normal((n, TEXTURE_NORMALS), dtype=np.float32), SIZE)
    return params, spacing, texture


def test_ideal_images_are_float32_in_unit_range() -> None:
    params, spacing, texture = _anatomy(8)
    images = render_anatomy(params, spacing, texture, SIZE)
    assert images.shape == (8, SIZE, SIZE)
    assert images.dtype == np.float32
    assert float(images.min()) >= 0.0
    assert float(images.max()) <= 1.0


def test_lungs_are_darker_than_the_mediastinum_and_air_is_darkest() -> None:
    params, spacing, texture = _anatomy(16)
    images = render_anatomy(params, spacing, texture, SIZE)
    lungs = lung_fields(params, spacing, SIZE) > 0.9
    centre = SIZE // 2
    mediastinum = images[:, centre - 20 : centre + 20, centre - 2 : centre + 2].mean(axis=(1, 2))
    lung_mean = np.array([image[mask].mean() for image, mask in zip(images, lungs, strict=True)])
    corner = images[:, :6, :6].mean(axis=(1, 2))
    assert np.all(lung_mean < mediastinum - 0.15)
    assert np.all(corner < lung_mean)


def test_texture_field_has_unit_variance_and_is_smooth() -> None:
    rng = np.random.default_rng(3)
    field = smooth_texture(rng.standard_normal((64, TEXTURE_NORMALS), dtype=np.float32), SIZE)
    # Two unit-variance fields weighted 0.9 and sqrt(0.19) give variance 0.81 + 0.19 = 1.
    assert float(field.var()) == pytest.approx(1.0, abs=0.15)
    neighbour_corr = np.corrcoef(field[:, :, :-1].ravel(), field[:, :, 1:].ravel())[0, 1]
    assert neighbour_corr > 0.9


def test_lesion_centres_fall_inside_the_lung_fields() -> None:
    n = 400
    params, spacing, _ = _anatomy(n, seed=5)
    geometry = draw_lesions(np.random.default_rng(6).random((n, LESION_UNIFORMS)), params, LesionSpec())
    rows = np.rint(mm_to_pixel(geometry.y_mm, spacing, SIZE)).astype(int)
    cols = np.rint(mm_to_pixel(geometry.x_mm, spacing, SIZE)).astype(int)
    lungs = lung_fields(params, spacing, SIZE)
    assert np.all(lungs[np.arange(n), rows, cols] > 0.9)
    # Both lungs get lesions.
    assert 0.35 < float(np.mean(cols > SIZE / 2)) < 0.65


def test_lesion_size_and_contrast_follow_the_spec() -> None:
    spec = LesionSpec(size_mm_min=8.0, size_mm_max=20.0, contrast_min=0.1, contrast_max=0.15)
    params, _, _ = _anatomy(500, seed=8)
    geometry = draw_lesions(np.random.default_rng(9).random((500, LESION_UNIFORMS)), params, spec)
    assert geometry.size_mm.min() >= 8.0
    assert geometry.size_mm.max() <= 20.0
    # Log-uniform: the median is the geometric mean of the bounds.
    assert float(np.median(geometry.size_mm)) == pytest.approx(np.sqrt(8.0 * 20.0), rel=0.08)
    assert geometry.contrast.min() >= 0.1
    assert geometry.contrast.max() <= 0.15


def test_rendered_lesion_has_stated_contrast_and_width_in_pixels() -> None:
    spacing = np.array([2.5])
    size_mm = 15.0
    # Half a pixel off the image centre puts the lesion centre exactly on pixel 64.
    on_pixel = np.array([0.5 * 2.5])
    size, contrast = np.array([size_mm]), np.array([0.2])
    geometry = LesionGeometry(x_mm=on_pixel, y_mm=on_pixel, size_mm=size, contrast=contrast)
    image = np.zeros((1, SIZE, SIZE), dtype=np.float32)
    render_lesions(image, geometry, spacing, SIZE)
    profile = image[0].max(axis=0)
    assert float(image[0, 64, 64]) == pytest.approx(0.2, rel=1e-6)
    # The stated diameter is the full width at half maximum: count pixels above half the peak.
    width_px = int(np.sum(profile >= 0.1))
    assert width_px == pytest.approx(size_mm / 2.5, abs=1.0)


def test_rendered_lesion_raises_intensity_only_around_its_centre() -> None:
    params, spacing, texture = _anatomy(4, seed=11)
    plain = render_anatomy(params, spacing, texture, SIZE)
    geometry = draw_lesions(np.random.default_rng(12).random((4, LESION_UNIFORMS)), params, LesionSpec())
    lesioned = plain.copy()
    render_lesions(lesioned, geometry, spacing, SIZE)
    rows = mm_to_pixel(geometry.y_mm, spacing, SIZE)
    cols = mm_to_pixel(geometry.x_mm, spacing, SIZE)
    for k in range(4):
        r, c = round(rows[k]), round(cols[k])
        assert lesioned[k, r, c] - plain[k, r, c] == pytest.approx(geometry.contrast[k], rel=0.15)
        far = (r + SIZE // 2) % SIZE
        assert lesioned[k, far, c] - plain[k, far, c] < 1e-4
