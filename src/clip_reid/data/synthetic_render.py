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


@dataclass(frozen=True)
class _Figure:
    """Where the body parts of one person fall in one shot (pixels), and their colours."""

    a: Appearance
    view: str
    stride: float
    unit: float  # one unit of a 128-pixel-tall reference figure
    cx: float
    half: float  # half the torso width
    head_r: float
    head_cy: float
    neck: float
    waist: float
    feet: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    upper: tuple[int, int, int]
    lower: tuple[int, int, int]
    accessory: tuple[int, int, int]


def _figure(a: Appearance, shot: Shot, size: tuple[int, int]) -> _Figure:
    """Scale the reference figure to the crop, the shot's framing and the person's height."""
    height, width = size
    unit = height / 128 * shot.scale * a.height
    top = height * 0.06 + shot.dy + (1 - a.height) * height * 0.5
    half = {"slim": 8.0, "average": 10.0, "broad": 12.5}[a.body] * unit
    if shot.view == "side":
        half *= 0.7
    head_r = 7 * unit
    head_cy = top + head_r
    neck = head_cy + head_r
    return _Figure(
        a=a, view=shot.view, stride=shot.stride, unit=unit, cx=width / 2 + shot.dx, half=half,
        head_r=head_r, head_cy=head_cy, neck=neck, waist=neck + 40 * unit,
        feet=top + 118 * unit, skin=SKIN_RGB[a.skin], hair=HAIR_RGB[a.hair_colour],
        upper=UPPER_RGB[a.upper_colour], lower=LOWER_RGB[a.lower_colour],
        accessory=ACCESSORY_RGB[a.accessory_colour],
    )


def _draw_behind(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """What the body hides: long hair behind the shoulders, a backpack seen from the side."""
    unit, cx = f.unit, f.cx
    if f.a.long_hair:
        _box(draw, (cx - f.head_r - 1, f.head_cy, cx + f.head_r + 1, f.neck + 16 * unit), f.hair)
    if f.a.backpack and f.view == "side":
        _box(draw, (cx + f.half - 1, f.neck + 4 * unit, cx + f.half + 8 * unit,
                    f.waist - 6 * unit), f.accessory)


def _draw_legs(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """The lower garment (trousers, shorts or a dress), bare legs where shown, and shoes."""
    a, unit, cx, half, waist = f.a, f.unit, f.cx, f.half, f.waist
    step = f.stride * 6 * unit
    if a.dress:
        hem = waist + (52 if not a.short_lower else 30) * unit
        draw.polygon([(cx - half, waist), (cx + half, waist), (cx + half + 6 * unit, hem),
                      (cx - half - 6 * unit, hem)], fill=f.lower)
        leg_top = hem
    else:
        leg_top = waist
    knee = waist + (22 if a.short_lower else 60) * unit
    for side in (-1, 1):
        x = cx + side * half * 0.45 + side * step * (0.5 if f.view == "side" else 0.15)
        if not a.dress:
            _box(draw, (x - 4.5 * unit, waist, x + 4.5 * unit, knee), f.lower)
        _box(draw, (x - 3.5 * unit, max(leg_top, knee if not a.dress else leg_top),
                    x + 3.5 * unit, f.feet - 4 * unit), f.skin if (a.short_lower or a.dress)
             else f.lower)
        _box(draw, (x - 5 * unit, f.feet - 5 * unit, x + 5 * unit, f.feet), SHOE_RGB[a.shoe])


def _draw_torso(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """The upper garment and its pattern (stripes, checks or a band)."""
    unit, cx, half, neck, waist = f.unit, f.cx, f.half, f.neck, f.waist
    _box(draw, (cx - half, neck, cx + half, waist), f.upper)
    pattern = UPPER_RGB[f.a.pattern_colour]
    if f.a.pattern == "stripes":
        for y in np.arange(neck + 4 * unit, waist, 7 * unit):
            _box(draw, (cx - half, y, cx + half, y + 2.5 * unit), pattern)
    elif f.a.pattern == "checks":
        for y in np.arange(neck, waist, 8 * unit):
            for x in np.arange(cx - half, cx + half, 8 * unit):
                if int((y - neck) / (8 * unit) + (x - cx) / (8 * unit)) % 2 == 0:
                    _box(draw, (x, y, x + 4 * unit, y + 4 * unit), pattern)
    elif f.a.pattern == "band":
        _box(draw, (cx - half, waist - 12 * unit, cx + half, waist - 6 * unit), pattern)


def _draw_logo(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """A chest logo, visible from the front only."""
    if f.a.logo == "none" or f.view != "front":
        return
    lx, ly, r = f.cx, f.neck + 13 * f.unit, 4.5 * f.unit
    colour = UPPER_RGB[f.a.logo_colour]
    if f.a.logo == "circle":
        draw.ellipse((lx - r, ly - r, lx + r, ly + r), fill=colour)
    elif f.a.logo == "square":
        _box(draw, (lx - r, ly - r, lx + r, ly + r), colour)
    else:
        draw.polygon([(lx, ly - r), (lx + r, ly + r), (lx - r, ly + r)], fill=colour)


def _draw_backpack_over_torso(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """A backpack from behind (the pack) or from the front (its two straps)."""
    unit, cx, half, neck = f.unit, f.cx, f.half, f.neck
    if f.a.backpack and f.view == "back":
        _box(draw, (cx - half * 0.8, neck + 4 * unit, cx + half * 0.8, f.waist - 4 * unit),
             f.accessory)
    elif f.a.backpack and f.view == "front":
        for side in (-1, 1):
            _box(draw, (cx + side * half * 0.55 - unit, neck, cx + side * half * 0.55 + unit,
                        neck + 20 * unit), f.accessory)


def _draw_arms(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """Sleeves and bare forearms (one arm seen from the side), then a hand-held bag."""
    unit, cx, half, neck = f.unit, f.cx, f.half, f.neck
    arm_len = 36 * unit
    sleeve_end = neck + (11 if f.a.short_sleeves else arm_len / unit) * unit
    arm_sides = (1,) if f.view == "side" else (-1, 1)
    for side in arm_sides:
        x0 = cx + side * (half + (0 if f.view == "side" else 4 * unit))
        _box(draw, (x0 - 3.5 * unit, neck + unit, x0 + 3.5 * unit, sleeve_end), f.upper)
        _box(draw, (x0 - 3 * unit, sleeve_end, x0 + 3 * unit, neck + arm_len), f.skin)
    if f.a.handbag:
        hx = cx + (half + 4 * unit) * (1 if f.view != "back" else -1)
        _box(draw, (hx - 5 * unit, neck + arm_len, hx + 5 * unit, neck + arm_len + 9 * unit),
             f.accessory)


def _draw_shoulder_bag(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """A shoulder bag: its strap across the body and the bag resting on the hip."""
    if not f.a.bag:
        return
    unit, cx, half, waist = f.unit, f.cx, f.half, f.waist
    draw.line((cx - half, f.neck + 2 * unit, cx + half, waist - 4 * unit), fill=f.accessory,
              width=max(1, int(2 * unit)))
    _box(draw, (cx + half - 2 * unit, waist - 8 * unit, cx + half + 7 * unit, waist + 4 * unit),
         f.accessory)


def _draw_head(draw: ImageDraw.ImageDraw, f: _Figure) -> None:
    """Face and hair (all hair from behind, a fringe otherwise), then a hat."""
    cx, r, cy = f.cx, f.head_r, f.head_cy
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=f.skin)
    if f.view == "back":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=f.hair)
    else:
        draw.chord((cx - r, cy - r, cx + r, cy + r), 180, 360, fill=f.hair)
    if f.a.hat:
        _box(draw, (cx - r - 2 * f.unit, cy - r - 2 * f.unit, cx + r + 2 * f.unit, cy - r * 0.3),
             f.accessory)


# Back to front: each step paints over the ones before it.
_LAYERS = (_draw_behind, _draw_legs, _draw_torso, _draw_logo, _draw_backpack_over_torso,
           _draw_arms, _draw_shoulder_bag, _draw_head)


def render_person(appearance: Appearance, shot: Shot, size: tuple[int, int]) -> Image.Image:
    """The crop (PIL RGB, ``size`` = (height, width)) before camera effects."""
    image = _background(size, shot)
    draw = ImageDraw.Draw(image)
    figure = _figure(appearance, shot, size)
    for layer in _LAYERS:
        layer(draw, figure)
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
