import pandas as pd
import pytest
import torch
from builders import run_pipeline

from clip_reid.modeling import ClipSpec, load_clip, load_reid_model
from clip_reid.modeling.backbone import clip_backbone_checkpoint
from clip_reid.modeling.text_tower import load_text_tower
from clip_reid.pipelines import encoder_training, prompt_learning

NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


def _backbone(params):
    return clip_backbone_checkpoint(ClipSpec(**params["model"]["clip"]))


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
    assert features["features"].shape == (int((tiny_index.split == "train").sum()), 128)
    assert out["text_features"]["features"].shape == (8, 128)
    learner = out["prompt_learner"]
    assert learner["state_dict"]["ctx"].shape == (8, 4, 128)
    assert learner["config"]["num_classes"] == 8


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_prompt_learning_caption_modes_run(tiny_index, tiny_params, mode):
    train = tiny_index[tiny_index.split == "train"]
    captions = pd.DataFrame({"path": train.path[:5], "pid": train.pid[:5],
                             "caption": ["A person in a red top."] * 5, "source": "csv"})
    tiny_params["prompt_learning"]["caption_mode"] = mode
    out = _stage1(tiny_index, tiny_params, captions)
    assert out["prompt_learner"]["config"]["caption_mode"] == mode
    assert torch.isfinite(out["text_features"]["features"]).all()


def test_graph_sampling_option_runs(tiny_index, tiny_params):
    tiny_params["prompt_learning"]["graph_sampling"].update(
        enabled=True, classes_per_batch=3, instances_per_class=2, start_epoch=1
    )
    out = _stage1(tiny_index, tiny_params)
    assert out["text_features"]["features"].shape[0] == 8


def test_encoder_training_checkpoint_rebuilds_and_same_seed_same_losses(tiny_index, tiny_params):
    text = {"features": torch.randn(8, 128, generator=torch.Generator().manual_seed(0)),
            "labels": torch.arange(8)}
    first = _stage2(tiny_index, text, tiny_params)["reid_model"]
    second = _stage2(tiny_index, text, tiny_params)["reid_model"]
    assert first["final_metrics"]["loss_epoch"] == second["final_metrics"]["loss_epoch"]
    model = load_reid_model(first)
    assert model(torch.randn(2, 3, 64, 32)).shape == (2, 640)
    assert first["config"]["num_classes"] == 8
    stored = first["text_tower"]["state_dict"]  # the backbone's frozen text tower, for text search
    backbone = load_clip(ClipSpec(**tiny_params["model"]["clip"]))
    assert all(torch.equal(stored[k], v) for k, v in backbone.state_dict().items() if k in stored)
    assert set(stored) == set(load_text_tower(first).state_dict())


def test_encoder_training_caption_term_trains_and_needs_training_captions(tiny_index,
                                                                          tiny_params):
    text = {"features": torch.randn(8, 128, generator=torch.Generator().manual_seed(0)),
            "labels": torch.arange(8)}
    tiny_params["encoder_training"]["loss_weights"]["caption"] = 1.0
    train = tiny_index[tiny_index.split == "train"]
    captions = pd.DataFrame({"path": train.path, "pid": train.pid, "source": "csv",
                             "caption": [f"a person number {pid}" for pid in train.pid]})
    checkpoint = _stage2(tiny_index, text, tiny_params, captions)["reid_model"]
    assert checkpoint["final_metrics"]["caption_loss_epoch"] > 0
    test = tiny_index[tiny_index.split != "train"]
    test_only = pd.DataFrame({"path": test.path, "pid": test.pid, "source": "csv",
                              "caption": "a test person"})
    with pytest.raises(ValueError, match="no training image has a caption"):
        _stage2(tiny_index, text, tiny_params, test_only)


def test_encoder_training_rejects_text_features_of_another_split(tiny_index, tiny_params):
    text = {"features": torch.randn(5, 128), "labels": torch.arange(5)}
    with pytest.raises(ValueError, match="re-run prompt_learning"):
        _stage2(tiny_index, text, tiny_params)


def test_encoder_training_runs_on_two_cpu_processes(tiny_index, tiny_params):
    """Multi-device training: DDP over 2 CPU processes (gloo), each rank with whole P×K batches."""
    tiny_params["trainer"].update(devices=2, strategy="ddp_spawn")
    text = {"features": torch.randn(8, 128), "labels": torch.arange(8)}
    checkpoint = _stage2(tiny_index, text, tiny_params)["reid_model"]
    assert checkpoint["epochs"] == 2
    model = load_reid_model(checkpoint)
    assert torch.isfinite(model(torch.randn(2, 3, 64, 32))).all()


def test_interrupted_encoder_training_resumes(tiny_index, tiny_params, monkeypatch):
    """A crash mid-stage leaves no model; the same run resumes from its last finished epoch."""
    import lightning as L

    from clip_reid.pipelines.encoder_training import nodes

    tiny_params["encoder_training"]["max_epochs"] = 3
    text = {"features": torch.randn(8, 128), "labels": torch.arange(8)}
    started = []

    class CrashAtEpoch2(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            started.append(trainer.current_epoch)
            if crash and trainer.current_epoch == 2:
                raise RuntimeError("power cut")

    original = nodes.build_trainer
    monkeypatch.setattr(nodes, "build_trainer",
                        lambda *args: original(*args[:3], [CrashAtEpoch2()]))
    crash = True
    with pytest.raises(Exception, match="power cut"):
        _stage2(tiny_index, text, tiny_params)
    crash = False
    checkpoint = _stage2(tiny_index, text, tiny_params)["reid_model"]
    assert started == [0, 1, 2, 2]
    assert checkpoint["epochs"] == 3


def test_stages_start_from_the_caption_tuned_backbone(tiny_index, tiny_params, monkeypatch):
    """Tuned weights reach stage 1 (prompt template embedding, image features) and stage 2."""
    from clip_reid.modeling import PromptLearner, TextEncoder, load_clip, tokenizer_for
    from clip_reid.pipelines.encoder_training import nodes as stage2_nodes
    from clip_reid.pipelines.prompt_learning import nodes as stage1_nodes

    spec = ClipSpec(**tiny_params["model"]["clip"])
    tuned = load_clip(spec)
    with torch.no_grad():
        tuned.token_embedding.weight.mul_(3.0)
        tuned.visual.conv1.weight.mul_(-1.0)
    backbone = clip_backbone_checkpoint(spec, tuned)
    plain = stage1_nodes.extract_train_image_features(
        tiny_index, _backbone(tiny_params), tiny_params["model"], tiny_params["prompt_learning"])
    tuned_features = stage1_nodes.extract_train_image_features(
        tiny_index, backbone, tiny_params["model"], tiny_params["prompt_learning"])
    assert not torch.allclose(plain["features"], tuned_features["features"])

    learner = PromptLearner(8, TextEncoder(stage1_nodes.load_clip_backbone(backbone, spec),
                                           tokenizer_for(spec.arch)))
    expected = tuned.token_embedding(learner.tokenized_prompts)
    assert torch.equal(learner.template_embedding, expected)

    text = {"features": torch.randn(8, 128), "labels": torch.arange(8)}
    tiny_params["encoder_training"]["max_epochs"] = 1
    seen = []
    original = stage2_nodes.load_clip_backbone
    monkeypatch.setattr(stage2_nodes, "load_clip_backbone",
                        lambda *args: seen.append(args[0]) or original(*args))
    stage2_nodes.train_reid_model(tiny_index, text, backbone, NO_CAPTIONS, tiny_params["model"],
                                  tiny_params["encoder_training"], tiny_params["trainer"], 0)
    assert seen == [backbone]
