import json

import pytest
from builders import run_pipeline

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.pipelines.captions import create_pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions") / "demo"
    generate_synthetic_market(root, SyntheticConfig(seed=2, num_train_ids=5, num_test_ids=4,
                                                    num_distractors=2, num_junk=1))
    index, _ = build_image_index(root)
    return root, index


def _run(demo, sources):
    root, index = demo
    inputs = {"image_index": index, "params:dataset": {"root": str(root)},
              "params:captions": {"sources": sources}}
    return run_pipeline(create_pipeline(), inputs)


def test_attribute_sentences_cover_every_identity_of_the_demo(demo):
    outputs = _run(demo, {"attributes": "beside_dataset"})
    captions = outputs["image_captions"]
    index = demo[1]
    annotated = index[index.pid != 0]  # distractors have no identity attributes
    assert set(captions.path) == set(annotated.path)
    assert captions.caption.str.match(r"^(A|An) ").all()
    coverage = outputs["caption_coverage"].set_index(["source", "split"])
    assert coverage.loc[("attributes", "train"), "image_coverage"] == 1.0
    assert outputs["caption_metrics"]["attributes.train.image_coverage"]["value"] == 1.0


def test_sources_combine(demo, tmp_path):
    index = demo[1]
    first = index.path[0].split("/")[-1]
    pedes = tmp_path / "reid_raw.json"
    pedes.write_text(json.dumps([{"file_path": f"Market/{first}", "captions": ["Someone."]}]))
    csv = tmp_path / "c.csv"
    csv.write_text(f"image,caption\n{first},Custom text.\n")
    outputs = _run(demo, {"attributes": None, "cuhk_pedes": str(pedes), "csv": str(csv)})
    assert sorted(outputs["image_captions"].source) == ["csv", "cuhk_pedes"]


def test_missing_source_file_says_which_parameter(demo, tmp_path):
    with pytest.raises(FileNotFoundError, match="captions.sources.csv"):
        _run(demo, {"csv": str(tmp_path / "nope.csv")})
