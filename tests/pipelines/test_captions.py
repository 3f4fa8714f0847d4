import copy
import json
import logging

import pytest
import torch
from builders import base_parameters, run_pipeline

from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.modeling import ClipSpec, load_clip
from clip_reid.pipelines.captions import create_pipeline


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions") / "demo"
    generate_synthetic_market(root, SyntheticConfig(seed=2, num_train_ids=5, num_test_ids=4,
                                                    num_distractors=2, num_junk=1))
    index, _ = build_image_index(root)
    return root, index


def _params(tmp_path=None, finetune=False):
    params = copy.deepcopy(base_parameters("model", "captions"))
    params["trainer"]["enable_progress_bar"] = False
    params["caption_finetune"].update(enabled=finetune, max_epochs=1, batch_size=8,
                                      work_dir=str(tmp_path or "unused") + "/work")
    return params


def _run(demo, sources, params=None):
    root, index = demo
    params = params or _params()
    inputs = {"image_index": index, "dataset_root": str(root),
              "params:captions": {"sources": sources}, "params:seed": 0,
              **{f"params:{k}": params[k] for k in ("model", "caption_finetune", "trainer")}}
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


def test_without_fine_tuning_the_backbone_is_the_configured_clip(demo):
    backbone = _run(demo, {"attributes": "beside_dataset"})["clip_backbone"]
    assert not backbone.finetuned and backbone.tuned_weights is None


def test_caption_fine_tuning_trains_clip_on_training_captions_only(demo, tmp_path):
    params = _params(tmp_path, finetune=True)
    outputs = _run(demo, {"attributes": "beside_dataset"}, params)
    backbone, captions = outputs["clip_backbone"], outputs["image_captions"]
    train_paths = demo[1].path[demo[1].split == "train"]
    assert backbone.finetuned
    assert backbone.metadata["pairs"] == int(captions.path.isin(train_paths).sum()) < len(captions)
    spec = ClipSpec(**params["model"]["clip"])
    tuned, original = backbone.clip_model(spec), load_clip(spec)
    assert not torch.equal(tuned.token_embedding.weight, original.token_embedding.weight)
    assert torch.isfinite(torch.tensor(backbone.metadata["final_loss"]))
    assert not (tmp_path / "work").exists()  # a finished run leaves no resume state


def test_fine_tuning_without_training_captions_says_how_to_fix(demo, tmp_path):
    with pytest.raises(ValueError, match="caption_finetune.enabled: false"):
        _run(demo, {"attributes": None}, _params(tmp_path, finetune=True))


def test_absent_attribute_file_beside_the_dataset_is_skipped_with_one_info_line(
    tiny_market, caplog
):
    index, _ = build_image_index(tiny_market)
    with caplog.at_level(logging.INFO, logger="clip_reid.data.caption_gathering"):
        outputs = _run((tiny_market, index), {"attributes": "beside_dataset"})
    assert outputs["image_captions"].empty
    skipped = [r for r in caplog.records if "market_attribute.mat" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.INFO
    assert str(tiny_market) in skipped[0].getMessage()
    assert not outputs["clip_backbone"].finetuned  # the rest of the pipeline still runs


def test_an_explicit_attribute_path_must_exist(demo, tmp_path):
    with pytest.raises(FileNotFoundError, match="captions.sources.attributes"):
        _run(demo, {"attributes": str(tmp_path / "market_attribute.mat")})
