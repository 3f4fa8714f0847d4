import pandas as pd
import pytest
import torch
from builders import run_pipeline

from clip_reid.data.splits import select_split
from clip_reid.modeling import (
    ClipSpec,
    PromptLearner,
    TextEncoder,
    load_clip,
    tokenizer_for,
)
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.encoder_training import EncoderTrainingSettings, train_encoder
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.modeling.prompt_learning import (
    PromptLearningSettings,
    cache_train_features,
)
from clip_reid.modeling.trainer import TrainerSettings
from clip_reid.pipelines import encoder_training, prompt_learning

NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


def _backbone(params):
    return ClipBackbone.of(ClipSpec(**params["model"]["clip"]))


def _stage1(index, params, captions=NO_CAPTIONS):
    inputs = {"image_index": index, "image_captions": captions, "params:seed": 0,
              "clip_backbone": _backbone(params),
              **{f"params:{k}": v for k, v in params.items()}}
    return run_pipeline(prompt_learning.create_pipeline(), inputs)


def _stage2(index, text_features, params, captions=NO_CAPTIONS):
    inputs = {"image_index": index, "text_features": text_features, "params:seed": 0,
              "clip_backbone": _backbone(params), "image_captions": captions,
              **{f"params:{k}": v for k, v in params.items()}}
    return run_pipeline(encoder_training.create_pipeline(), inputs)


def test_prompt_learning_outputs(tiny_index, tiny_params):
    out = _stage1(tiny_index, tiny_params)
    features = out["train_image_features"]
    assert features.features.shape == (int((tiny_index.split == "train").sum()), 128)
    assert out["text_features"].features.shape == (8, 128)
    learner = out["prompt_learner"]
    assert learner.state_dict["ctx"].shape == (8, 4, 128)
    assert learner.config["num_classes"] == 8
    assert learner.config["class_word"] == "person"  # class_word null: the demo layout's


def test_prompt_class_word_comes_from_the_layout_unless_set(tiny_index, tiny_params):
    tiny_params["prompt_learning"]["max_epochs"] = 1
    tiny_params["dataset"]["name"] = "veri776"
    assert _stage1(tiny_index, tiny_params)["prompt_learner"].config["class_word"] == "vehicle"
    tiny_params["prompt_learning"]["class_word"] = "pedestrian"
    assert _stage1(tiny_index, tiny_params)["prompt_learner"].config["class_word"] == (
        "pedestrian")


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_prompt_learning_caption_modes_run(tiny_index, tiny_params, mode):
    train = tiny_index[tiny_index.split == "train"]
    captions = pd.DataFrame({"path": train.path[:5], "pid": train.pid[:5],
                             "caption": ["A person in a red top."] * 5, "source": "csv"})
    tiny_params["prompt_learning"]["caption_mode"] = mode
    out = _stage1(tiny_index, tiny_params, captions)
    assert out["prompt_learner"].config["caption_mode"] == mode
    assert torch.isfinite(out["text_features"].features).all()


def test_graph_sampling_option_runs(tiny_index, tiny_params):
    tiny_params["prompt_learning"]["graph_sampling"].update(
        enabled=True, classes_per_batch=3, instances_per_class=2, start_epoch=1
    )
    out = _stage1(tiny_index, tiny_params)
    assert out["text_features"].features.shape[0] == 8


def test_encoder_training_checkpoint_rebuilds_and_same_seed_same_losses(tiny_index, tiny_params):
    text = TextFeatures.of_identities(
        torch.randn(8, 128, generator=torch.Generator().manual_seed(0)))
    first = _stage2(tiny_index, text, tiny_params)["reid_model"]
    second = _stage2(tiny_index, text, tiny_params)["reid_model"]
    assert (first.metadata["final_metrics"]["loss_epoch"]
            == second.metadata["final_metrics"]["loss_epoch"])
    model = first.model()
    assert model(torch.randn(2, 3, 64, 32)).shape == (2, 640)
    assert first.config.num_classes == 8
    stored = first.text_tower  # the backbone's frozen text tower, for text search
    backbone = load_clip(ClipSpec(**tiny_params["model"]["clip"]))
    assert all(torch.equal(stored[k], v) for k, v in backbone.state_dict().items() if k in stored)
    assert set(stored) == set(first.text_encoder().state_dict())


def test_encoder_training_caption_term_trains_and_needs_training_captions(tiny_index,
                                                                          tiny_params):
    text = TextFeatures.of_identities(
        torch.randn(8, 128, generator=torch.Generator().manual_seed(0)))
    tiny_params["encoder_training"]["loss"]["weights"]["caption"] = 1.0
    train = tiny_index[tiny_index.split == "train"]
    captions = pd.DataFrame({"path": train.path, "pid": train.pid, "source": "csv",
                             "caption": [f"a person number {pid}" for pid in train.pid]})
    checkpoint = _stage2(tiny_index, text, tiny_params, captions)["reid_model"]
    assert checkpoint.metadata["final_metrics"]["caption_loss_epoch"] > 0
    test = tiny_index[tiny_index.split != "train"]
    test_only = pd.DataFrame({"path": test.path, "pid": test.pid, "source": "csv",
                              "caption": "a test person"})
    with pytest.raises(ValueError, match="no training image has a caption"):
        _stage2(tiny_index, text, tiny_params, test_only)


def test_encoder_training_rejects_text_features_of_another_split(tiny_index, tiny_params):
    text = TextFeatures.of_identities(torch.randn(5, 128))
    with pytest.raises(ValueError, match="re-run prompt_learning"):
        _stage2(tiny_index, text, tiny_params)


def test_encoder_training_runs_on_two_cpu_processes(tiny_index, tiny_params):
    """Multi-device training: DDP over 2 CPU processes (gloo), each rank with whole P×K batches."""
    tiny_params["trainer"].update(devices=2, strategy="ddp_spawn")
    text = TextFeatures.of_identities(torch.randn(8, 128))
    checkpoint = _stage2(tiny_index, text, tiny_params)["reid_model"]
    assert checkpoint.metadata["epochs"] == 2
    model = checkpoint.model()
    assert torch.isfinite(model(torch.randn(2, 3, 64, 32))).all()


def _settings(params):
    return (ModelSettings.from_params(params["model"]),
            TrainerSettings.from_params(params["trainer"]))


def test_stages_start_from_the_caption_tuned_backbone(tiny_index, tiny_params, tmp_path):
    """Tuned weights reach stage 1 (prompt template embedding, image features) and stage 2."""
    model, trainer = _settings(tiny_params)
    spec = model.clip
    tuned = load_clip(spec)
    with torch.no_grad():
        tuned.token_embedding.weight.mul_(3.0)
        tuned.visual.conv1.weight.mul_(-1.0)
    backbone = ClipBackbone.of(spec, tuned)
    stage1 = PromptLearningSettings.from_params(tiny_params["prompt_learning"])
    train = select_split(tiny_index, "train")
    cpu = torch.device("cpu")
    plain = cache_train_features(train, _backbone(tiny_params), model, stage1, cpu, 0)
    tuned_features = cache_train_features(train, backbone, model, stage1, cpu, 0)
    assert not torch.allclose(plain.features, tuned_features.features)

    learner = PromptLearner(8, TextEncoder(backbone.clip_model(spec), tokenizer_for(spec.arch)),
                            n_ctx=4, class_word="person")
    expected = tuned.token_embedding(learner.tokenized_prompts)
    assert torch.equal(learner.template_embedding, expected)

    text = TextFeatures.of_identities(torch.randn(8, 128))
    stage2 = EncoderTrainingSettings.from_params({**tiny_params["encoder_training"],
                                                  "max_epochs": 1})
    from_tuned = train_encoder(train, text, backbone, model, stage2, trainer, 0)
    from_plain = train_encoder(train, text, _backbone(tiny_params), model, stage2, trainer, 0)
    assert not torch.equal(from_tuned.state_dict["image_encoder.visual.conv1.weight"],
                           from_plain.state_dict["image_encoder.visual.conv1.weight"])
