"""Nodes of captions: read every configured text source and measure its coverage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import open_clip
import pandas as pd
import torch

from clip_reid.data.attribute_sentences import attribute_sentences
from clip_reid.data.attributes import read_attribute_mat
from clip_reid.data.caption_sources import (
    CAPTION_COLUMNS,
    attribute_captions,
    caption_coverage,
    read_caption_csv,
    read_cuhk_pedes,
)
from clip_reid.data.transforms import build_train_transform
from clip_reid.modeling import TextEncoder, load_clip, tokenizer_for
from clip_reid.modeling.backbone import clip_backbone_checkpoint
from clip_reid.modeling.caption_finetune import (
    CaptionFinetuneModule,
    CaptionFinetuneOptimisation,
    ImageCaptionPairs,
    native_input_size,
)
from clip_reid.modeling.trainer import (
    build_trainer,
    finish_work_dir,
    raise_if_interrupted,
    resume_checkpoint,
)
from clip_reid.pipelines.model_params import clip_spec, normalization, trainer_settings

logger = logging.getLogger(__name__)

ATTRIBUTE_FILE = "market_attribute.mat"


def _attribute_file(setting: str, dataset_root: Path) -> Path | None:
    """``beside_dataset``: the file the demo generator (and Market-1501's annotators) put in the
    dataset folder, skipped when absent; any other value is a path that must exist."""
    if setting != "beside_dataset":
        return _require(Path(setting), "Attribute file", "attributes")
    folder = dataset_root if dataset_root.is_dir() else dataset_root.parent  # image_list: a CSV
    path = folder / ATTRIBUTE_FILE
    if path.is_file():
        return path
    logger.info("No attribute captions: no %s in %s (captions.sources.attributes: beside_dataset "
                "looks there; set a path to use one elsewhere)", ATTRIBUTE_FILE, folder)
    return None


def _require(path: Path, what: str, key: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path}. Set captions.sources.{key} to its path, or to null to "
            "go without this source."
        )
    return path


def collect_captions(
    image_index: pd.DataFrame, dataset: dict[str, Any], captions: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read each configured source (CUHK-PEDES JSON, attribute file, CSV) into one table."""
    sources = captions.get("sources") or {}
    root = Path(dataset["root"])
    tables = []
    if sources.get("cuhk_pedes"):
        path = _require(Path(sources["cuhk_pedes"]), "CUHK-PEDES annotations", "cuhk_pedes")
        tables.append(read_cuhk_pedes(path, image_index))
    attribute_file = sources.get("attributes") and _attribute_file(sources["attributes"], root)
    if attribute_file:
        attributes = read_attribute_mat(attribute_file)
        tables.append(attribute_captions(attributes, image_index, attribute_sentences))
    if sources.get("csv"):
        path = _require(Path(sources["csv"]), "Caption CSV", "csv")
        tables.append(read_caption_csv(path, image_index))
    empty = pd.DataFrame(columns=CAPTION_COLUMNS)
    table = pd.concat(tables, ignore_index=True) if tables else empty
    coverage = caption_coverage(image_index, table)
    for row in coverage.itertuples():
        logger.info(
            "Captions %-10s %-7s: %d/%d images (%.1f%%), %d/%d identities", row.source, row.split,
            row.images_covered, row.images_total, 100 * row.image_coverage, row.ids_covered,
            row.ids_total,
        )
    metrics = {
        f"{row.source}.{row.split}.image_coverage": {
            "value": float(row.image_coverage), "step": 0,
        }
        for row in coverage.itertuples()
    }
    return table, coverage, metrics


def _report_long_captions(captions: pd.Series, arch: str) -> int:
    """Count the distinct captions longer than the text tower's context, in one INFO line.

    Truncation itself happens in ``TextEncoder.tokenize``; tokenizing to one token more than the
    context shows which captions it cuts (their extra position is not padding).
    """
    unique = captions.drop_duplicates().tolist()
    tokenizer = tokenizer_for(arch)
    config = open_clip.get_model_config(arch) or {}
    context = config.get("text_cfg", {}).get("context_length", 77)
    if not unique:
        return 0
    long = int((tokenizer(unique, context_length=context + 1)[:, context] != 0).sum())
    if long:
        logger.info("%d of %d distinct captions exceed the %d-token context of the %s text tower "
                    "and will be truncated (end-of-text token kept)", long, len(unique), context,
                    arch)
    return long


def _training_pairs(image_index: pd.DataFrame, image_captions: pd.DataFrame) -> pd.DataFrame:
    """(path, caption) pairs of training images only: test captions must not leak into training."""
    train_paths = image_index.loc[image_index["split"] == "train", "path"]
    pairs = image_captions[image_captions["path"].isin(train_paths)]
    return pairs.sort_values(["path", "caption"]).reset_index(drop=True)


def prepare_clip_backbone(
    image_index: pd.DataFrame,
    image_captions: pd.DataFrame,
    model: dict[str, Any],
    caption_finetune: dict[str, Any],
    trainer: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The CLIP both training stages start from: as configured, or caption-tuned when enabled."""
    spec = clip_spec(model)
    _report_long_captions(image_captions["caption"], spec.arch)
    if not caption_finetune.get("enabled", False):
        return clip_backbone_checkpoint(spec)
    pairs = _training_pairs(image_index, image_captions)
    if pairs.empty:
        raise ValueError(
            "caption_finetune.enabled is true but no training image has a caption. Configure a "
            "source under captions.sources, or set caption_finetune.enabled: false."
        )
    L.seed_everything(seed, workers=True, verbose=False)
    clip = load_clip(spec).train()
    tokens = TextEncoder(clip, tokenizer_for(spec.arch)).tokenize(pairs["caption"].tolist())
    caption_ids = torch.as_tensor(pd.factorize(pairs["caption"])[0])
    mean, std = normalization(model)
    transform = build_train_transform(native_input_size(clip), mean, std, padding=0,
                                      erasing_prob=0.0)
    dataset = ImageCaptionPairs(pairs["path"].tolist(), tokens, caption_ids, transform)
    batch_size = min(caption_finetune["batch_size"], len(dataset))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) > batch_size,
        num_workers=trainer.get("num_workers", 0), generator=torch.Generator().manual_seed(seed),
    )
    optim = CaptionFinetuneOptimisation(**caption_finetune["optimizer"],
                                        max_epochs=caption_finetune["max_epochs"])
    logger.info("Caption fine-tuning %s on %d (image, caption) pairs, %d distinct captions",
                spec.arch, len(pairs), int(caption_ids.max()) + 1)
    work_dir = Path(caption_finetune["work_dir"])
    fingerprint = {"model": model, "caption_finetune": caption_finetune, "trainer": trainer,
                   "seed": seed, "pairs": len(pairs)}
    resume = resume_checkpoint(work_dir, fingerprint)
    fit = build_trainer(trainer_settings(trainer, caption_finetune["max_epochs"]), work_dir,
                        "caption_finetune")
    module = CaptionFinetuneModule(clip, optim)
    fit.fit(module, loader, ckpt_path=resume, weights_only=True)
    raise_if_interrupted(fit, work_dir)
    finish_work_dir(work_dir)
    final_loss = float(fit.callback_metrics.get("loss", torch.tensor(float("nan"))))
    return clip_backbone_checkpoint(spec, module.clip.eval(), pairs=len(pairs),
                                    final_loss=final_loss)
