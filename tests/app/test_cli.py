"""`clip-reid-app` reads the project through Kedro: the chosen environment's catalog entries
(`reid_model`, `gallery_index`, `gallery_store`) and merged parameters; the answers come from
that environment's model and gallery."""

import base64
from contextlib import ExitStack
from pathlib import Path

import pytest
from builders import write_crop
from fastapi.testclient import TestClient
from inference.conftest import tiny_checkpoint
from kedro_project import copy_project

from clip_reid.app.cli import build_service, parse_args
from clip_reid.app.project import NotAProjectError, open_project
from clip_reid.app.server import create_app
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.gallery_store import embed_into_milvus
from clip_reid.inference.listing import GallerySettings, gallery_images
from clip_reid.settings_base import SettingsError

# Per environment: the model's seed, the pids its gallery gives the same three crops, top_k.
ENVS = {"one": (0, [1, 2, 3], 2), "two": (1, [11, 12, 13], 3)}
CATALOG = """
reid_model:
  type: clip_reid.io.TorchCheckpointDataset
  filepath: data/{env}/reid_model.pt
  artifact: clip_reid.modeling.ReidCheckpoint
  versioned: true
gallery_index:
  type: clip_reid.io.TorchCheckpointDataset
  filepath: data/{env}/gallery_index.pt
  artifact: clip_reid.inference.gallery_store.saved_gallery
  versioned: true
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The project with two environments, each with its own model, gallery and top_k; and a
    gallery CSV (image_list) of the same three crops."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    crops = [root / "crops" / f"{n:04d}_c{n % 2 + 1}s1_000001_00.jpg" for n in range(3)]
    for number, path in enumerate(crops):
        write_crop(path, seed=number)
    (root / "crops" / "gallery.csv").write_text("image,pid,camid,split\n" + "".join(
        f"{path.name},{n + 21},{n % 2},gallery\n" for n, path in enumerate(crops)))
    for env, (seed, pids, top_k) in ENVS.items():
        (root / "conf" / env).mkdir()
        (root / "conf" / env / "catalog.yml").write_text(CATALOG.format(env=env))
        (root / "conf" / env / "parameters.yml").write_text(f"inference:\n  top_k: {top_k}\n")
        checkpoint = tiny_checkpoint(seed=seed)
        gallery = GalleryIndex.build(FeatureExtractor(checkpoint), [str(p) for p in crops], pids,
                                     [0, 1, 0])
        catalog = open_project(root, env, {}).catalog
        catalog.save("reid_model", checkpoint)
        catalog.save("gallery_index", gallery)
        (root / "data" / env / "fingerprint").write_text(gallery.fingerprint)
    return root


def _ask(service, crop: Path) -> dict:
    client = TestClient(create_app(service, "test"))
    answer = client.post("/api/search", json={"image": base64.b64encode(crop.read_bytes())
                                               .decode()})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _version(project: Path, env: str, name: str) -> Path:
    [path] = (project / "data" / env / name).glob(f"*/{name}")
    return path


@pytest.mark.parametrize("env", sorted(ENVS))
def test_each_environment_serves_its_own_model_gallery_and_parameters(project, env):
    _, pids, top_k = ENVS[env]
    with ExitStack() as stack:
        service, problem = build_service(parse_args(["--env", env]), stack, project)
    assert problem is None
    assert service.extractor.fingerprint == (project / "data" / env / "fingerprint").read_text()
    answer = _ask(service, sorted((project / "crops").glob("*.jpg"))[1])
    assert answer["predicted"] == pids[1] and len(answer["results"]) == top_k


def test_no_trained_model_says_which_entry_is_empty_and_how_to_train(project):
    with ExitStack() as stack:
        service, problem = build_service(parse_args([]), stack, project)
    assert service is None
    assert problem.startswith("No trained model yet: the catalog entry reid_model "
                              "(data/06_models/reid_model.pt/) holds no version.")
    assert "`kedro run --pipelines full`" in problem
    (project / "conf" / "empty").mkdir(exist_ok=True)
    with ExitStack() as stack:
        _, problem = build_service(parse_args(["--env", "empty"]), stack, project)
    assert "`kedro run --env empty --pipelines full`" in problem


def test_a_model_without_its_gallery_embeds_the_gallery_dataset_named(project):
    """--model (env two's file) beside env one's gallery (another model's): the gallery CSV
    given by --gallery-root/--gallery-name is embedded at start, with that CSV's labels."""
    args = parse_args(["--env", "one", "--model", str(_version(project, "two", "reid_model.pt")),
                       "--gallery-name", "image_list",
                       "--gallery-root", str(project / "crops" / "gallery.csv")])
    with ExitStack() as stack:
        service, _ = build_service(args, stack, project)
    assert isinstance(service.gallery, GalleryIndex) and len(service.gallery) == 3
    assert _ask(service, sorted((project / "crops").glob("*.jpg"))[2])["predicted"] == 23
    with ExitStack() as stack, pytest.raises(FileNotFoundError, match="no image_index"):
        build_service(parse_args(["--env", "one", "--model", str(args.model)]), stack, project)


def test_overrides_read_files_as_the_catalog_reads_them(project):
    args = parse_args(["--env", "two", "--model", str(_version(project, "one", "reid_model.pt")),
                       "--gallery", str(_version(project, "one", "gallery_index.pt"))])
    with ExitStack() as stack:
        service, _ = build_service(args, stack, project)
    answer = _ask(service, sorted((project / "crops").glob("*.jpg"))[1])
    assert answer["predicted"] == ENVS["one"][1][1] and len(answer["results"]) == ENVS["two"][2]


def test_a_milvus_gallery_comes_through_the_catalogs_gallery_store(project, tmp_path):
    """inference.gallery.store=milvus: the gallery_index reference, the collection opened through
    the catalog's gallery_store at --uri."""
    uri = str(tmp_path / "gallery.db")
    env = project / "conf" / "milvus"
    env.mkdir()
    (env / "catalog.yml").write_text(CATALOG.format(env="milvus"))
    checkpoint = tiny_checkpoint(seed=0)
    images = gallery_images(GallerySettings(name="image_list",
                                            root=str(project / "crops" / "gallery.csv")), None)
    params = {"inference": {"gallery": {"store": "milvus", "uri": uri}}}
    catalog = open_project(project, "milvus", params).catalog
    with catalog.load("gallery_store") as store:
        reference = embed_into_milvus(FeatureExtractor(checkpoint), images, store.gallery,
                                      "cosine")
    catalog.save("reid_model", checkpoint)
    catalog.save("gallery_index", reference)
    with ExitStack() as stack:
        service, _ = build_service(parse_args(["--env", "milvus", "--store", "milvus", "--uri",
                                               uri]), stack, project)
        assert not isinstance(service.gallery, GalleryIndex)
        assert _ask(service, sorted((project / "crops").glob("*.jpg"))[0])["predicted"] == 21


def test_bad_parameters_and_a_folder_outside_the_project_fail_clearly(project, tmp_path):
    with ExitStack() as stack, pytest.raises(SettingsError, match="inference.top_k"):
        build_service(parse_args(["--env", "one", "--top-k", "0"]), stack, project)
    with ExitStack() as stack, pytest.raises(NotAProjectError, match="where you run `kedro run`"):
        build_service(parse_args([]), stack, tmp_path)
