"""A synthetic pedestrian dataset in exact Market-1501 layout: the demo's embedded default.

Deterministic by seed (each identity and each shot has its own seeded generator, so output
does not depend on generation order), written to a temporary folder and renamed into place,
with a manifest so a second call with the same configuration does nothing.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clip_reid.data.attributes import write_attribute_mat
from clip_reid.data.market import SPLIT_FOLDERS
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
    CameraLook,
    Shot,
    apply_camera,
    render_person,
)

logger = logging.getLogger(__name__)

MANIFEST = "synthetic_manifest.json"
ATTRIBUTE_FILE = "market_attribute.mat"
_UPPER, _LOWER = tuple(UPPER_RGB), tuple(LOWER_RGB)


class SyntheticConfigMismatch(RuntimeError):
    """The folder holds a synthetic set generated with another configuration."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the demo set (defaults: a few seconds to generate)."""

    seed: int = 0
    num_train_ids: int = 120
    num_test_ids: int = 120
    num_distractors: int = 150
    num_junk: int = 60
    image_size: tuple[int, int] = (128, 64)  # height, width, as Market-1501 crops
    cameras: int = 6
    train_images_per_id: tuple[int, int] = (6, 10)
    gallery_images_per_id: tuple[int, int] = (3, 7)
    queries_per_id: tuple[int, int] = (1, 2)
    family_size: int = 3  # identities sharing coarse attributes, differing in details
    occlusion_prob: float = 0.15

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(self.image_size))
        for name in ("train_images_per_id", "gallery_images_per_id", "queries_per_id"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.cameras < 2:
            raise ValueError("A ReID dataset needs at least 2 cameras (cross-camera matching).")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _coarse_attributes(rng: np.random.Generator) -> dict:
    """Market-schema attributes, drawn once per family of look-alike identities."""
    dress = rng.random() < 0.2
    return {
        "gender": 2 if dress or rng.random() < 0.4 else 1,
        "age": int(rng.choice([1, 2, 3, 4], p=[0.05, 0.7, 0.2, 0.05])),
        "long_hair": bool(rng.random() < 0.4),
        "short_sleeves": bool(rng.random() < 0.5),
        "short_lower": bool(rng.random() < 0.35),
        "dress": bool(dress),
        "hat": bool(rng.random() < 0.1),
        "backpack": bool(rng.random() < 0.3),
        "bag": bool(rng.random() < 0.25),
        "handbag": bool(rng.random() < 0.15),
        "upper_colour": str(rng.choice(_UPPER)),
        "lower_colour": str(rng.choice(_LOWER)),
    }


def _appearance(coarse: dict, rng: np.random.Generator) -> Appearance:
    """Finer details that separate family members: patterns, logos, shoes, body, skin, hair."""
    return Appearance(
        **coarse,
        skin=int(rng.integers(len(SKIN_RGB))),
        hair_colour=int(rng.integers(len(HAIR_RGB))),
        shoe=int(rng.integers(len(SHOE_RGB))),
        pattern=str(rng.choice(PATTERNS)),
        pattern_colour=str(rng.choice(_UPPER)),
        logo=str(rng.choice(LOGOS)),
        logo_colour=str(rng.choice(_UPPER)),
        body=str(rng.choice(BODIES)),
        height=float(rng.uniform(0.86, 1.0)),
        accessory_colour=int(rng.integers(len(ACCESSORY_RGB))),
    )


def _camera_looks(config: SyntheticConfig) -> list[CameraLook]:
    rng = _rng(config.seed, 7)
    return [
        CameraLook(
            gains=tuple(float(g) for g in rng.uniform(0.75, 1.25, 3)),
            brightness=float(rng.uniform(0.7, 1.2)),
            blur=float(rng.uniform(0.0, 1.0)),
            noise=float(rng.uniform(2, 10)),
            jpeg_quality=int(rng.integers(35, 90)),
        )
        for _ in range(config.cameras)
    ]


def _shot(rng: np.random.Generator, config: SyntheticConfig) -> Shot:
    height, width = config.image_size
    occluder = None
    if rng.random() < config.occlusion_prob:  # a pole, a car, another pedestrian's shoulder
        x0 = int(rng.integers(-width // 4, width))
        y0 = int(rng.integers(height // 3, height))
        occluder = (x0, y0, x0 + int(rng.integers(8, width // 2)), height)
    return Shot(
        view=str(rng.choice(VIEWS, p=[0.4, 0.4, 0.2])),
        dx=int(rng.integers(-6, 7)),
        dy=int(rng.integers(-4, 5)),
        scale=float(rng.uniform(0.88, 1.05)),
        stride=float(rng.uniform(-1, 1)),
        background=tuple(int(v) for v in rng.integers(60, 200, 3)),
        floor=tuple(int(v) for v in rng.integers(50, 160, 3)),
        clutter_seed=int(rng.integers(2**31)),
        occluder=occluder,
        occluder_colour=tuple(int(v) for v in rng.integers(20, 230, 3)),
    )


@dataclass(frozen=True)
class _Crop:
    folder: str
    pid: int
    camera: int  # 0-based
    appearance: Appearance | None  # None: a junk crop with no complete person
    key: tuple[int, ...]


def _plan(config: SyntheticConfig) -> tuple[list[_Crop], list[tuple[str, int, Appearance]]]:
    """Which crops to draw, and the identity table for the attribute file."""
    rng = _rng(config.seed, 1)
    total = config.num_train_ids + config.num_test_ids
    pids = sorted(rng.choice(np.arange(1, 1502), size=total, replace=False).tolist())
    order = rng.permutation(total)
    train_pids = sorted(pids[i] for i in order[: config.num_train_ids])
    test_pids = sorted(pids[i] for i in order[config.num_train_ids:])
    people: dict[int, Appearance] = {}
    for number, pid in enumerate(sorted(pids, key=lambda p: _rng(config.seed, 2, p).random())):
        coarse = _coarse_attributes(_rng(config.seed, 3, number // config.family_size))
        people[pid] = _appearance(coarse, _rng(config.seed, 4, pid))

    crops: list[_Crop] = []
    for pid in train_pids:
        r = _rng(config.seed, 5, pid)
        cams = r.choice(config.cameras, size=int(r.integers(2, config.cameras + 1)), replace=False)
        for k in range(int(r.integers(config.train_images_per_id[0],
                                      config.train_images_per_id[1] + 1))):
            crops.append(_Crop("train", pid, int(cams[k % len(cams)]), people[pid], (0, pid, k)))
    for pid in test_pids:
        r = _rng(config.seed, 6, pid)
        cams = r.permutation(config.cameras)
        n_query = int(r.integers(config.queries_per_id[0], config.queries_per_id[1] + 1))
        n_gallery = int(r.integers(config.gallery_images_per_id[0],
                                   config.gallery_images_per_id[1] + 1))
        for k in range(n_query):
            crops.append(_Crop("query", pid, int(cams[k]), people[pid], (0, pid, 100 + k)))
        gallery_cams = cams[n_query:] if n_query < config.cameras else cams
        for k in range(max(n_gallery, 1)):
            camera = int(gallery_cams[k % len(gallery_cams)] if k < 2 else r.choice(cams))
            crops.append(_Crop("gallery", pid, camera, people[pid], (0, pid, 200 + k)))
    for k in range(config.num_distractors):
        r = _rng(config.seed, 8, k)
        look = _appearance(_coarse_attributes(r), r)
        crops.append(_Crop("gallery", 0, int(r.integers(config.cameras)), look, (1, 0, k)))
    for k in range(config.num_junk):
        r = _rng(config.seed, 9, k)
        crops.append(_Crop("gallery", -1, int(r.integers(config.cameras)), None, (2, 0, k)))

    identities = [("train", p, people[p]) for p in train_pids]
    identities += [("test", p, people[p]) for p in test_pids]
    return crops, identities


def _draw(crop: _Crop, config: SyntheticConfig, looks: list[CameraLook]):
    rng = _rng(config.seed, 10, *crop.key)
    shot = _shot(rng, config)
    if crop.appearance is None:  # junk: background, or a person cut off by a bad detection
        sliver = _appearance(_coarse_attributes(rng), rng)
        shot = Shot(**{**asdict(shot), "dx": int(rng.choice([-1, 1]) * config.image_size[1] * 0.6)})
        image = render_person(sliver, shot, config.image_size)
    else:
        image = render_person(crop.appearance, shot, config.image_size)
    return apply_camera(image, looks[crop.camera], rng)


def _attribute_rows(identities: list[tuple[str, int, Appearance]]) -> pd.DataFrame:
    """The Market-1501 attribute schema (1/2 coded) plus the finer details as extra fields."""
    rows = []
    for split, pid, a in identities:
        row = {
            "split": split, "pid": pid, "age": a.age, "gender": a.gender,
            "hair": 2 if a.long_hair else 1, "up": 2 if a.short_sleeves else 1,
            "down": 2 if a.short_lower else 1, "clothes": 1 if a.dress else 2,
            "hat": 2 if a.hat else 1, "backpack": 2 if a.backpack else 1,
            "bag": 2 if a.bag else 1, "handbag": 2 if a.handbag else 1,
        }
        row |= {"up" + c: 2 if c == a.upper_colour else 1 for c in _UPPER}
        row |= {"down" + c: 2 if c == a.lower_colour else 1 for c in _LOWER}
        row |= {
            "pattern": PATTERNS.index(a.pattern) + 1, "logo": LOGOS.index(a.logo) + 1,
            "shoe": a.shoe + 1, "body": BODIES.index(a.body) + 1,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def generate_synthetic_market(root: Path | str, config: SyntheticConfig) -> dict:
    """Write the dataset to ``root`` (which must not exist) and return a summary."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} exists; use ensure_synthetic_market to reuse it.")
    crops, identities = _plan(config)
    looks = _camera_looks(config)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".{root.name}-") as staging:
        staging = Path(staging)
        for folder in SPLIT_FOLDERS.values():
            (staging / folder).mkdir()
        frames: dict[tuple[int, int], int] = {}
        for crop in crops:
            seq = 1 + crop.key[-1] % 6
            frame = frames.get((crop.camera, seq), 0) + int(_rng(config.seed, 11, *crop.key)
                                                             .integers(1, 40))
            frames[(crop.camera, seq)] = frame
            pid = "-1" if crop.pid < 0 else f"{crop.pid:04d}"
            name = f"{pid}_c{crop.camera + 1}s{seq}_{frame:06d}_{crop.key[-1] % 100:02d}.jpg"
            image = _draw(crop, config, looks)
            image.save(staging / SPLIT_FOLDERS[crop.folder] / name,
                       quality=looks[crop.camera].jpeg_quality)
        write_attribute_mat(staging / ATTRIBUTE_FILE, _attribute_rows(identities))
        summary = {
            "config": asdict(config),
            "images": {split: sum(c.folder == split for c in crops) for split in SPLIT_FOLDERS},
        }
        (staging / MANIFEST).write_text(json.dumps(summary, indent=2))
        staging.rename(root)
        staging.mkdir()  # let TemporaryDirectory clean up the name it created
    logger.info("Generated synthetic demo dataset in %s: %s", root, summary["images"])
    return summary


def ensure_synthetic_market(root: Path | str, config: SyntheticConfig) -> Path:
    """Generate on first use; afterwards check the folder was made with the same config."""
    root = Path(root)
    manifest = root / MANIFEST
    if not root.exists():
        generate_synthetic_market(root, config)
        return root
    if not manifest.is_file():
        raise SyntheticConfigMismatch(
            f"{root} exists but has no {MANIFEST}: it is not a generated demo set. Point "
            "dataset.root elsewhere or use dataset.source: local for your own data."
        )
    stored = json.loads(manifest.read_text())["config"]
    wanted = json.loads(json.dumps(asdict(config)))
    if stored != wanted:
        raise SyntheticConfigMismatch(
            f"{root} was generated with {stored}, but the parameters ask for {wanted}. Delete "
            f"{root} to regenerate it, or set dataset.root to another folder."
        )
    return root
