"""Draw one synthetic pedestrian crop: an identity's appearance seen by a camera.

Appearance (attributes and finer details) belongs to the identity; view, pose, background,
occlusion and the camera's colour cast, blur, noise and compression belong to the shot. That
split is what makes the set a ReID problem rather than a colour lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

UPPER_RGB = {
    "black": (30, 30, 34), "white": (225, 225, 220), "red": (180, 40, 40),
    "purple": (110, 50, 140), "yellow": (215, 190, 50), "gray": (125, 125, 125),
    "blue": (45, 70, 160), "green": (50, 130, 60),
}
LOWER_RGB = {
    "black": (28, 28, 32), "white": (220, 220, 215), "pink": (220, 140, 170),
    "purple": (100, 50, 120), "yellow": (200, 180, 60), "gray": (110, 110, 115),
    "blue": (40, 60, 130), "green": (50, 110, 60), "brown": (110, 75, 45),
}
SKIN_RGB = ((240, 200, 170), (205, 160, 120), (160, 115, 80), (100, 70, 50))
HAIR_RGB = ((20, 15, 10), (90, 60, 30), (170, 140, 90), (150, 150, 150))
SHOE_RGB = ((20, 20, 20), (235, 235, 235), (120, 70, 40), (180, 40, 40), (40, 60, 140))
ACCESSORY_RGB = ((25, 25, 25), (90, 60, 40), (150, 30, 30), (40, 50, 110), (200, 190, 170))
PATTERNS = ("plain", "stripes", "checks", "band")
LOGOS = ("none", "circle", "square", "triangle")
BODIES = ("slim", "average", "broad")
VIEWS = ("front", "back", "side")


@dataclass(frozen=True)
class Appearance:
    """Everything about a person that stays the same across cameras."""

    gender: int  # 1 male, 2 female (Market coding)
    age: int  # 1 young .. 4 old
    long_hair: bool
    short_sleeves: bool
    short_lower: bool
    dress: bool
    hat: bool
    backpack: bool
    bag: bool
    handbag: bool
    upper_colour: str
    lower_colour: str
    skin: int
    hair_colour: int
    shoe: int
    pattern: str
    pattern_colour: str
    logo: str
    logo_colour: str
    body: str
    height: float  # relative figure height, 0.86..1.0
    accessory_colour: int


@dataclass(frozen=True)
class Shot:
    """How one camera sees the person this time."""

    view: str
    dx: int
    dy: int
    scale: float
    stride: float
    background: tuple[int, int, int]
    floor: tuple[int, int, int]
    clutter_seed: int
    occluder: tuple[int, int, int, int] | None
    occluder_colour: tuple[int, int, int]


def _box(draw: ImageDraw.ImageDraw, xy, fill) -> None:
    x0, y0, x1, y1 = xy
    draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=fill)


def _background(size: tuple[int, int], shot: Shot) -> Image.Image:
    height, width = size
    rng = np.random.default_rng(shot.clutter_seed)
    canvas = np.empty((height, width, 3), dtype=np.float32)
    horizon = int(height * rng.uniform(0.55, 0.75))
    canvas[:horizon] = shot.background
    canvas[horizon:] = shot.floor
    for _ in range(rng.integers(2, 6)):  # windows, signs, parked things
        x0, y0 = rng.integers(0, width), rng.integers(0, horizon)
        w, h = rng.integers(4, 24), rng.integers(4, 30)
        canvas[y0:y0 + h, x0:x0 + w] = rng.integers(40, 220, 3)
    canvas += rng.normal(0, 6, canvas.shape)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def render_person(appearance: Appearance, shot: Shot, size: tuple[int, int]) -> Image.Image:
    """The crop (PIL RGB, ``size`` = (height, width)) before camera effects."""
    height, width = size
    image = _background(size, shot)
    draw = ImageDraw.Draw(image)
    a = appearance
    unit = height / 128 * shot.scale * a.height
    cx = width / 2 + shot.dx
    top = height * 0.06 + shot.dy + (1 - a.height) * height * 0.5
    half = {"slim": 8.0, "average": 10.0, "broad": 12.5}[a.body] * unit
    if shot.view == "side":
        half *= 0.7
    skin, hair = SKIN_RGB[a.skin], HAIR_RGB[a.hair_colour]
    upper, lower = UPPER_RGB[a.upper_colour], LOWER_RGB[a.lower_colour]
    head_r = 7 * unit
    head_cy = top + head_r
    neck = head_cy + head_r
    waist = neck + 40 * unit
    feet = top + 118 * unit
    accessory = ACCESSORY_RGB[a.accessory_colour]

    if a.long_hair:  # hair falls behind the shoulders
        _box(draw, (cx - head_r - 1, head_cy, cx + head_r + 1, neck + 16 * unit), hair)
    if a.backpack and shot.view == "side":
        _box(draw, (cx + half - 1, neck + 4 * unit, cx + half + 8 * unit, waist - 6 * unit),
             accessory)

    # legs / lower garment
    step = shot.stride * 6 * unit
    if a.dress:
        hem = waist + (52 if not a.short_lower else 30) * unit
        draw.polygon([(cx - half, waist), (cx + half, waist), (cx + half + 6 * unit, hem),
                      (cx - half - 6 * unit, hem)], fill=lower)
        leg_top = hem
    else:
        leg_top = waist
    knee = waist + (22 if a.short_lower else 60) * unit
    for side in (-1, 1):
        x = cx + side * half * 0.45 + side * step * (0.5 if shot.view == "side" else 0.15)
        if not a.dress:
            _box(draw, (x - 4.5 * unit, waist, x + 4.5 * unit, knee), lower)
        _box(draw, (x - 3.5 * unit, max(leg_top, knee if not a.dress else leg_top),
                    x + 3.5 * unit, feet - 4 * unit), skin if (a.short_lower or a.dress)
             else lower)
        _box(draw, (x - 5 * unit, feet - 5 * unit, x + 5 * unit, feet), SHOE_RGB[a.shoe])

    # torso with pattern
    _box(draw, (cx - half, neck, cx + half, waist), upper)
    pattern = UPPER_RGB[a.pattern_colour]
    if a.pattern == "stripes":
        for y in np.arange(neck + 4 * unit, waist, 7 * unit):
            _box(draw, (cx - half, y, cx + half, y + 2.5 * unit), pattern)
    elif a.pattern == "checks":
        for y in np.arange(neck, waist, 8 * unit):
            for x in np.arange(cx - half, cx + half, 8 * unit):
                if int((y - neck) / (8 * unit) + (x - cx) / (8 * unit)) % 2 == 0:
                    _box(draw, (x, y, x + 4 * unit, y + 4 * unit), pattern)
    elif a.pattern == "band":
        _box(draw, (cx - half, waist - 12 * unit, cx + half, waist - 6 * unit), pattern)
    if a.logo != "none" and shot.view == "front":
        lx, ly, r = cx, neck + 13 * unit, 4.5 * unit
        colour = UPPER_RGB[a.logo_colour]
        if a.logo == "circle":
            draw.ellipse((lx - r, ly - r, lx + r, ly + r), fill=colour)
        elif a.logo == "square":
            _box(draw, (lx - r, ly - r, lx + r, ly + r), colour)
        else:
            draw.polygon([(lx, ly - r), (lx + r, ly + r), (lx - r, ly + r)], fill=colour)
    if a.backpack and shot.view == "back":
        _box(draw, (cx - half * 0.8, neck + 4 * unit, cx + half * 0.8, waist - 4 * unit),
             accessory)
    elif a.backpack and shot.view == "front":
        for side in (-1, 1):
            _box(draw, (cx + side * half * 0.55 - unit, neck, cx + side * half * 0.55 + unit,
                        neck + 20 * unit), accessory)

    # arms
    arm_len = 36 * unit
    sleeve_end = neck + (11 if a.short_sleeves else arm_len / unit) * unit
    arm_sides = (1,) if shot.view == "side" else (-1, 1)
    for side in arm_sides:
        x0 = cx + side * (half + (0 if shot.view == "side" else 4 * unit))
        _box(draw, (x0 - 3.5 * unit, neck + unit, x0 + 3.5 * unit, sleeve_end), upper)
        _box(draw, (x0 - 3 * unit, sleeve_end, x0 + 3 * unit, neck + arm_len), skin)
    if a.handbag:
        hx = cx + (half + 4 * unit) * (1 if shot.view != "back" else -1)
        _box(draw, (hx - 5 * unit, neck + arm_len, hx + 5 * unit, neck + arm_len + 9 * unit),
             accessory)
    if a.bag:  # shoulder bag across the body, resting on the hip
        draw.line((cx - half, neck + 2 * unit, cx + half, waist - 4 * unit), fill=accessory,
                  width=max(1, int(2 * unit)))
        _box(draw, (cx + half - 2 * unit, waist - 8 * unit, cx + half + 7 * unit, waist + 4 * unit),
             accessory)

    # head
    draw.ellipse((cx - head_r, head_cy - head_r, cx + head_r, head_cy + head_r), fill=skin)
    if shot.view == "back":
        draw.ellipse((cx - head_r, head_cy - head_r, cx + head_r, head_cy + head_r), fill=hair)
    else:
        draw.chord((cx - head_r, head_cy - head_r, cx + head_r, head_cy + head_r), 180, 360,
                   fill=hair)
    if a.hat:
        _box(draw, (cx - head_r - 2 * unit, head_cy - head_r - 2 * unit, cx + head_r + 2 * unit,
                    head_cy - head_r * 0.3), accessory)
    if shot.occluder is not None:
        _box(draw, shot.occluder, shot.occluder_colour)
    return image


@dataclass(frozen=True)
class CameraLook:
    """The imaging of one camera: colour cast, brightness, blur, noise, compression."""

    gains: tuple[float, float, float]
    brightness: float
    blur: float
    noise: float
    jpeg_quality: int


def apply_camera(image: Image.Image, look: CameraLook, rng: np.random.Generator) -> Image.Image:
    """The camera's imaging pipeline, with a little per-shot variation."""
    if look.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(look.blur * rng.uniform(0.7, 1.3)))
    pixels = np.asarray(image, dtype=np.float32)
    gain = np.array(look.gains) * look.brightness * rng.uniform(0.9, 1.1)
    pixels = pixels * gain + rng.normal(0, look.noise, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
