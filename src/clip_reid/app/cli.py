"""``clip-reid-app``: the search page on one environment of the Kedro project: the newest
``reid_model`` of its catalog, and its newest ``gallery_index`` (or the gallery of
``inference.gallery`` embedded at start when that one was embedded by another model)."""

from __future__ import annotations

import argparse
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from clip_reid.app.project import Project, open_project
from clip_reid.app.search import SearchService
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.gallery_store import Gallery, open_gallery
from clip_reid.inference.listing import gallery_images
from clip_reid.inference.milvus_gallery import MilvusGallery
from clip_reid.inference.settings import InferenceSettings

logger = logging.getLogger("clip_reid.app")

MODEL, GALLERY, STORE, INDEX = "reid_model", "gallery_index", "gallery_store", "image_index"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clip-reid-app", description=__doc__)
    parser.add_argument("--env", help="the Kedro environment whose catalog and parameters are "
                        "served, as `kedro run --env` (default: Kedro's, base + local)")
    parser.add_argument("--model", type=Path, help=f"a {MODEL} checkpoint file instead of the "
                        "catalog's newest version")
    parser.add_argument("--gallery", type=Path, help=f"a {GALLERY} file instead of the "
                        "catalog's newest version")
    parser.add_argument("--gallery-root", help="inference.gallery.root: the dataset whose "
                        "gallery split is embedded when no saved gallery is this model's "
                        "(default: the ingested image_index's gallery split)")
    parser.add_argument("--gallery-name", help="inference.gallery.name: its layout (market1501, "
                        "cuhk03_np, msmt17, veri776, image_list, ...; default: Market layout)")
    parser.add_argument("--store", choices=("faiss", "milvus"),
                        help="inference.gallery.store: saved gallery_index versions (faiss) or "
                             "the catalog's gallery_store Milvus collection")
    parser.add_argument("--uri", help="milvus: inference.gallery.uri, a milvus-lite .db file or "
                        "http://host:19530 (default: the catalog's gallery_store uri)")
    parser.add_argument("--threshold", type=float,
                        help="top-1 image distance beyond which the identity is unknown "
                             "(default: inference.threshold)")
    parser.add_argument("--text-threshold", type=float, default=None,
                        help="the same for descriptions (1 - cosine; default: never unknown)")
    parser.add_argument("--top-k", type=int, help="answers shown (default: inference.top_k)")
    parser.add_argument("--batch-size", type=int,
                        help="images per forward pass (default: inference.batch_size)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    return parser.parse_args(argv)


def runtime_params(args: argparse.Namespace) -> dict[str, Any]:
    """The options that are parameters, as `kedro run --params` would pass them (the catalog's
    gallery_store reads inference.gallery.uri from them)."""
    options = {"store": args.store, "uri": args.uri, "root": args.gallery_root,
               "name": args.gallery_name}
    gallery = {key: value for key, value in options.items() if value is not None}
    return {"inference": {"gallery": gallery}} if gallery else {}


def no_model_message(project: Project) -> str:
    return (f"No trained model yet: the catalog entry {MODEL} ({project.filepath(MODEL)}/) holds "
            f"no version. Train one with `{project.command('full')}` (a few minutes on the demo "
            "data), or pass --model <checkpoint.pt>.")


def _gallery_images(project: Project, settings: InferenceSettings) -> Any:
    """The labelled gallery ``inference.gallery`` names (else the ingested image_index's)."""
    reference = settings.gallery
    if reference.is_set:
        return gallery_images(reference, None)
    if not project.catalog.exists(INDEX):
        raise FileNotFoundError(
            f"No gallery embedded by this model and no {INDEX} ({project.filepath(INDEX)}) to "
            f"embed one from: run `{project.command('inference')}`, or pass --gallery-root "
            "<dataset folder>.")
    return gallery_images(reference, project.catalog.load(INDEX))


def _opened(gallery: Gallery, args: argparse.Namespace) -> Gallery:
    logger.info("Gallery: %s (%d images).", args.gallery or GALLERY, len(gallery))
    return gallery


def load_gallery(project: Project, args: argparse.Namespace, settings: InferenceSettings,
                 extractor: FeatureExtractor, stack: ExitStack) -> Gallery:
    """The saved gallery (--gallery, else the catalog's newest); embedded now from
    ``inference.gallery`` when there is none or another model's (faiss only: a Milvus
    collection is filled by `kedro run --pipelines inference`)."""
    state = (project.load_file(GALLERY, args.gallery) if args.gallery
             else project.catalog.load(GALLERY) if project.catalog.exists(GALLERY) else None)
    if settings.gallery.store == "milvus":
        if state is None:
            raise FileNotFoundError(
                f"No {GALLERY} ({project.filepath(GALLERY)}/) refers to a Milvus collection yet: "
                f"run `{project.command('inference')} --params inference.gallery.store=milvus`.")
        store: MilvusGallery = stack.enter_context(project.catalog.load(STORE)).gallery
        return _opened(open_gallery(state, store), args)
    if state is not None:
        gallery = open_gallery(state)
        if gallery.fingerprint == extractor.fingerprint:
            return _opened(gallery, args)
        logger.info("The saved %s was embedded by model %s, not this one.", GALLERY,
                    gallery.fingerprint)
    images = _gallery_images(project, settings)
    logger.info("Gallery: embedding %d images.", len(images))
    return GalleryIndex.build(extractor, images["path"].tolist(), images["pid"].tolist(),
                              images["camid"].tolist(), metric=settings.distance,
                              timestamps=images["timestamp"].tolist())


def inference_settings(project: Project, args: argparse.Namespace) -> InferenceSettings:
    """The environment's `inference` block with the options, checked as a run checks it."""
    overrides = {"threshold": args.threshold, "top_k": args.top_k, "batch_size": args.batch_size}
    block = {**(project.params.get("inference") or {}),
             **{key: value for key, value in overrides.items() if value is not None}}
    return InferenceSettings.from_params(block, "inference")


def build_service(args: argparse.Namespace, stack: ExitStack, project_path: Path | None = None
                  ) -> tuple[SearchService | None, str | None]:
    """The search service of the project at ``project_path`` (default: the current folder), or
    None and the reason (no trained model yet)."""
    project = open_project(project_path or Path.cwd(), args.env, runtime_params(args))
    settings = inference_settings(project, args)
    if args.model is None and not project.catalog.exists(MODEL):
        return None, no_model_message(project)
    model = project.load_file(MODEL, args.model) if args.model else project.catalog.load(MODEL)
    extractor = FeatureExtractor.cached(model, settings.batch_size)
    logger.info("Model: %s (%s).", args.model or f"{MODEL} ({project.filepath(MODEL)})",
                extractor.fingerprint)
    gallery = load_gallery(project, args, settings, extractor, stack)
    return SearchService(extractor, gallery, settings.threshold, args.text_threshold,
                         settings.top_k), None


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from clip_reid.app.server import create_app

    args = parse_args(argv)
    # Importing Kedro applied conf/logging.yml: the app's own lines at INFO, Kedro's only when
    # they matter (a page runs no pipeline); third-party INFO (open_clip's chatter) stays out.
    logging.getLogger("clip_reid").setLevel(logging.INFO)
    logging.getLogger("kedro").setLevel(logging.WARNING)
    with ExitStack() as stack:
        service, problem = build_service(args, stack)
        if problem:
            logger.warning(problem)
        app = create_app(service, "CLIP-ReID search", problem)
        logger.info("Search page: http://%s:%d/", args.host, args.port)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
