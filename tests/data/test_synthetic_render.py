"""The synthetic pedestrian drawing, pinned pixel for pixel: the demo's data (and so its
metrics) must not move when the drawing code is reorganised."""

from __future__ import annotations

import hashlib
from dataclasses import fields

import numpy as np

from clip_reid.data.synthetic_render import (
    ACCESSORY_RGB,
    BODIES,
    HAIR_RGB,
    LOGOS,
    LOWER_RGB,
    PATTERNS,
    SHOE_RGB,
    SKIN_RGB,
    UPPER_RGB,
    VIEWS,
    Appearance,
    Shot,
    render_person,
)

# sha256 of the 240 crops below, measured on the drawing before render_person was split up.
PINNED_DIGEST = "af3bfcad203f0177e7611e1db888bd7bfb32b999300a282bfbe74a34d19647bd"


def _appearance(rng: np.random.Generator) -> Appearance:
    """Every branch of the drawing is reached: flags are coin flips, choices uniform."""
    values = {f.name: bool(rng.random() < 0.5) for f in fields(Appearance) if f.type == "bool"}
    pick = lambda options: str(rng.choice(list(options)))  # noqa: E731
    return Appearance(
        **values, gender=int(rng.integers(1, 3)), age=int(rng.integers(1, 5)),
        upper_colour=pick(UPPER_RGB), lower_colour=pick(LOWER_RGB),
        skin=int(rng.integers(len(SKIN_RGB))), hair_colour=int(rng.integers(len(HAIR_RGB))),
        shoe=int(rng.integers(len(SHOE_RGB))), pattern=pick(PATTERNS),
        pattern_colour=pick(UPPER_RGB), logo=pick(LOGOS), logo_colour=pick(UPPER_RGB),
        body=pick(BODIES), height=float(rng.uniform(0.86, 1.0)),
        accessory_colour=int(rng.integers(len(ACCESSORY_RGB))),
    )


def _shot(rng: np.random.Generator, view: str) -> Shot:
    occluder = None
    if rng.random() < 0.3:
        x0, y0 = int(rng.integers(-16, 64)), int(rng.integers(40, 128))
        occluder = (x0, y0, x0 + int(rng.integers(8, 32)), 128)
    return Shot(
        view=view, dx=int(rng.integers(-6, 7)), dy=int(rng.integers(-4, 5)),
        scale=float(rng.uniform(0.88, 1.05)), stride=float(rng.uniform(-1, 1)),
        background=tuple(int(v) for v in rng.integers(60, 200, 3)),
        floor=tuple(int(v) for v in rng.integers(50, 160, 3)),
        clutter_seed=int(rng.integers(2**31)), occluder=occluder,
        occluder_colour=tuple(int(v) for v in rng.integers(20, 230, 3)),
    )


def test_rendered_pixels_are_pinned() -> None:
    rng = np.random.default_rng(0)
    digest = hashlib.sha256()
    for index in range(240):
        image = render_person(_appearance(rng), _shot(rng, VIEWS[index % 3]), (128, 64))
        digest.update(np.asarray(image).tobytes())
    assert digest.hexdigest() == PINNED_DIGEST
