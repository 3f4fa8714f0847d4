"""``clip-reid-app``: find the newest trained model and a gallery embedded by it (or embed the
dataset's gallery), then serve the search page."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import yaml

from clip_reid.app.search import SearchService
from clip_reid.data.market import build_image_index
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.gallery_store import TOKEN_VARIABLE, Gallery
from clip_reid.inference.milvus_gallery import MilvusGallery
from clip_reid.modeling.checkpoint_file import load_checkpoint_file

logger = logging.getLogger("clip_reid.app")

MODEL_VERSIONS = Path("data/06_models/reid_model.pt")
GALLERY_VERSIONS = Path("data/07_model_output/gallery_index.pt")
DATASET_PARAMETERS = Path("conf/base/parameters.yml")
INFERENCE_PARAMETERS = Path("conf/base/parameters_inference.yml")
MILVUS_URI = "data/07_model_output/gallery_milvus.db"  # the catalog's gallery_store default


def latest_version(folder: Path) -> Path | None:
    """The newest file of a Kedro versioned dataset (<folder>/<timestamp>/<name>), if any."""
    if not folder.is_dir():
        return None
    versions = sorted((v / folder.name for v in folder.iterdir() if (v / folder.name).is_file()),
                      reverse=True)
    return versions[0] if versions else None


def no_model_message(folder: Path) -> str:
    return (f"No trained model yet: {folder}/ holds no reid_model version. Train one with "
            "`kedro run --pipelines full` (a few minutes on the demo data), or pass --model "
            "<checkpoint.pt>.")


def load_gallery(extractor: FeatureExtractor, versions: Path, dataset_root: Path | None,
                 batch_size: int) -> GalleryIndex:
    """The newest saved gallery embedded by this model; otherwise the dataset's gallery split
    embedded now (and the newest saved one's features reused where the model matches)."""
    if versions.is_dir():
        for path in sorted(versions.glob(f"*/{versions.name}"), reverse=True):
            state = load_checkpoint_file(
                path, "delete it and re-run `kedro run --pipelines full`, which writes it")
            if state.get("fingerprint") == extractor.fingerprint:
                logger.info("Gallery: %s (%d images).", path, len(state["paths"]))
                return GalleryIndex.from_state(state)
    if dataset_root is None:
        raise FileNotFoundError(
            f"No gallery embedded by this model under {versions}/ and no dataset to embed one "
            "from: pass --gallery-root <Market-layout dataset> or run `kedro run --pipelines "
            "inference`.")
    index, _ = build_image_index(dataset_root, verify_images=False)
    gallery = index[index["split"] == "gallery"]
    logger.info("Gallery: embedding %d images of %s.", len(gallery), dataset_root)
    extractor.batch_size = batch_size
    return GalleryIndex.build(extractor, gallery["path"].tolist(), gallery["pid"].tolist(),
                              gallery["camid"].tolist())


def _parameter(path: Path, *keys: str):
    if not path.is_file():
        return None
    value = yaml.safe_load(path.read_text())
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clip-reid-app", description=__doc__)
    parser.add_argument("--model", type=Path, help="a reid_model checkpoint (default: the newest "
                        f"version under {MODEL_VERSIONS})")
    parser.add_argument("--gallery", type=Path, default=GALLERY_VERSIONS,
                        help="folder of gallery_index versions (default: %(default)s)")
    parser.add_argument("--gallery-root", type=Path,
                        help="Market-layout dataset whose gallery to embed when no saved gallery "
                             f"matches the model (default: dataset.root of {DATASET_PARAMETERS})")
    parser.add_argument("--store", choices=("faiss", "milvus"), default="faiss",
                        help="where the gallery is: saved gallery_index versions (faiss) or a "
                             "Milvus collection (default: %(default)s)")
    parser.add_argument("--uri", default=MILVUS_URI,
                        help="milvus: a milvus-lite .db file or http://host:19530 (token from "
                             f"${TOKEN_VARIABLE}; default: %(default)s)")
    parser.add_argument("--collection", default="gallery", help="milvus: the collection")
    parser.add_argument("--threshold", type=float,
                        default=_parameter(INFERENCE_PARAMETERS, "inference", "threshold"),
                        help="top-1 image distance beyond which the identity is unknown "
                             "(default: inference.threshold)")
    parser.add_argument("--text-threshold", type=float, default=None,
                        help="the same for descriptions (1 - cosine; default: never unknown)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    return parser.parse_args(argv)


def build_service(args: argparse.Namespace) -> tuple[SearchService | None, str | None]:
    """The search service, or None and the reason (no trained model yet)."""
    model = args.model or latest_version(MODEL_VERSIONS)
    if model is None:
        return None, no_model_message(MODEL_VERSIONS)
    extractor = FeatureExtractor(model)
    logger.info("Model: %s (%s).", model, extractor.fingerprint)
    root = args.gallery_root or _parameter(DATASET_PARAMETERS, "dataset", "root")
    gallery: Gallery
    if args.store == "milvus":  # embedded by kedro run --pipeline inference (store=milvus)
        gallery = MilvusGallery(args.uri, args.collection,
                                token=os.environ.get(TOKEN_VARIABLE))
        logger.info("Gallery: %r (%d images).", gallery, len(gallery))
    else:
        gallery = load_gallery(extractor, args.gallery, Path(root) if root else None,
                               args.batch_size)
    return SearchService(extractor, gallery, args.threshold, args.text_threshold,
                         args.top_k), None


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from clip_reid.app.server import create_app

    # The app's own lines at INFO; third-party INFO (open_clip logs its model-config chatter on
    # the root logger) stays out of the console.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("clip_reid").setLevel(logging.INFO)
    args = parse_args(argv)
    service, problem = build_service(args)
    if problem:
        logger.warning(problem)
    app = create_app(service, "CLIP-ReID search", problem)
    logger.info("Search page: http://%s:%d/", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
