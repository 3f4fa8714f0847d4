"""A CNN image tower in the CLIP model: the text tower kept, the ReID model, its optimiser groups,
its checkpoints and its ONNX export working unchanged."""

import dataclasses

import onnxruntime as ort
import pytest
import timm
import torch

from clip_reid.modeling import ClipReidModel, ClipSpec, ReidCheckpoint, load_clip
from clip_reid.modeling import image_tower as image_tower_module
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.encoder_training import EncoderOptimizer, encoder_param_groups
from clip_reid.modeling.image_tower import CnnImageTower
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.onnx_export import check_onnx, export_onnx
from clip_reid.modeling.weights import WeightsError

TOWER = "mobilenetv2_100"  # the smallest packaged tower: 320-wide last block, 1280-wide head
NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _trunk_file(tmp_path, seed=5):
    torch.manual_seed(seed)
    trunk = timm.create_model(TOWER, pretrained=False, num_classes=0)
    path = tmp_path / "mobilenetv2_imagenet.pth"
    torch.save(trunk.state_dict(), path)
    return trunk, path


def _reid(spec, **config):
    settings = ModelSettings(clip=spec, image_size=(64, 32))
    config = dataclasses.replace(settings.reid_config(num_classes=5, num_cameras=0), **config)
    return ClipReidModel(config, load_clip(spec))


def test_the_cnn_replaces_the_image_tower_and_keeps_clips_text_tower():
    plain = load_clip(ClipSpec("tiny-rn", seed=3))
    spec = ClipSpec("tiny-rn", seed=3, image_tower=TOWER)
    clip = load_clip(spec)
    assert isinstance(clip.visual, CnnImageTower)
    assert clip.encode_image(torch.randn(2, 3, 64, 32)).shape == (2, 128)  # tiny-rn's width
    text = {k: v for k, v in plain.state_dict().items() if not k.startswith("visual.")}
    for key, value in text.items():
        assert torch.equal(clip.state_dict()[key], value), key
    again = load_clip(spec)  # random towers are seeded
    assert torch.equal(again.visual.proj.weight, clip.visual.proj.weight)


def test_reid_features_come_from_the_trunk_and_the_projection():
    model = _reid(ClipSpec(image_tower=TOWER)).train()
    out = model(torch.randn(4, 3, 64, 32))
    assert [x.shape[1] for x in out.features] == [320, 1280, 128]
    assert torch.equal(out.image_projection, out.features[2])
    model.eval()
    assert model(torch.randn(3, 3, 64, 32)).shape == (3, model.feature_dim) == (3, 1408)


def test_file_weights_reach_the_trunk_and_checkpoints_rebuild_without_the_file(tmp_path):
    trunk, path = _trunk_file(tmp_path)
    spec = ClipSpec(image_tower=TOWER, image_weights=str(path))
    model = _reid(spec).eval()
    assert torch.equal(model.image_encoder.visual.trunk.conv_stem.weight, trunk.conv_stem.weight)
    checkpoint = ReidCheckpoint.from_model(model, NORM)
    path.unlink()  # the checkpoint alone rebuilds the model
    rebuilt = checkpoint.model()
    images = torch.randn(2, 3, 64, 32)
    assert torch.allclose(rebuilt(images), model(images))


def test_the_backbone_checkpoint_refuses_another_image_tower(tmp_path):
    spec = ClipSpec(image_tower=TOWER)
    checkpoint = ClipBackbone.of(spec)
    checkpoint.clip_model(spec)
    with pytest.raises(ValueError, match="Re-run the captions pipeline"):
        checkpoint.clip_model(dataclasses.replace(spec, image_tower="clip"))


def test_the_pretrained_tower_learns_at_tower_lr_factor_and_new_layers_at_base_lr():
    model = _reid(ClipSpec(image_tower=TOWER))
    groups = {g["name"]: g for g in
              encoder_param_groups(model, EncoderOptimizer(base_lr=1e-3, tower_lr_factor=0.1))}
    assert groups["weights"]["lr"] == 1e-3
    assert groups["tower_weights"]["lr"] == pytest.approx(1e-4)
    assert groups["tower_biases"]["lr"] == pytest.approx(2e-4)  # bias_lr_factor 2
    ids = {name: {id(p) for p in group["params"]} for name, group in groups.items()}
    assert id(model.image_encoder.visual.proj.weight) in ids["weights"]  # new: base rate
    assert id(model.classifier.weight) in ids["weights"]
    assert id(model.image_encoder.visual.trunk.conv_stem.weight) in ids["tower_weights"]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set().union(*ids.values()) == trainable
    assert sum(len(v) for v in ids.values()) == len(trainable)


def test_clip_towers_keep_their_groups_at_the_default_factor():
    model = _reid(ClipSpec("tiny-vit"), num_cameras=2)
    groups = {g["name"]: g for g in encoder_param_groups(model, EncoderOptimizer(base_lr=1e-3))}
    assert {g["lr"] for g in groups.values()} == {1e-3, 2e-3}
    assert id(model.image_encoder.camera_embedding) in {id(p) for p in groups["weights"]["params"]}
    assert id(model.image_encoder.visual.conv1.weight) in {
        id(p) for p in groups["tower_weights"]["params"]}


def test_onnx_export_matches_pytorch():
    model = _reid(ClipSpec(image_tower="tf_efficientnet_lite0")).eval()
    onnx_bytes = export_onnx(model)
    assert check_onnx(model, onnx_bytes, batch=2) < 1e-4
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    features = session.run(["features"], {"images": torch.randn(4, 3, 64, 32).numpy()})[0]
    assert features.shape == (4, model.feature_dim)


def test_camera_embeddings_stay_a_vit_option():
    with pytest.raises(ValueError, match="ViT backbones only"):
        _reid(ClipSpec(image_tower=TOWER), num_cameras=2)


@pytest.mark.parametrize(("tower", "mean"), [("tf_efficientnet_lite2", (0.5, 0.5, 0.5)),
                                             (TOWER, (0.485, 0.456, 0.406))])
def test_pixels_are_normalised_as_the_towers_imagenet_weights_expect(tower, mean):
    settings = ModelSettings.from_params({"clip": {"image_tower": tower}})
    assert settings.normalization()[0] == mean


def test_the_spec_says_which_tower_starts_random():
    assert ClipSpec().random_image_tower
    assert not ClipSpec(image_tower=TOWER, image_weights="package").random_image_tower
    assert ClipSpec(image_tower=TOWER).random_image_tower
    untrained = ClipSpec(weights="x.pt", image_tower=TOWER, image_weights="package").untrained()
    assert (untrained.weights, untrained.image_weights) == ("random", "random")


@pytest.mark.parametrize(("fields", "message"), [
    ({"image_weights": "package"}, "applies to a CNN image_tower"),
    ({"image_tower": "efficientnet_b0", "image_weights": "package"}, "No package ships"),
])
def test_inconsistent_specs_fail_when_the_parameters_are_read(fields, message):
    with pytest.raises(ValueError, match=message):
        ClipSpec(**fields)


@pytest.mark.parametrize(("tower", "error", "message"), [
    ("no_such_net", ValueError, "Unknown image tower"),
    ("resnet10t", TypeError, "EfficientNet family"),
])
def test_towers_outside_timms_efficientnet_family_are_refused(tower, error, message):
    with pytest.raises(error, match=message):
        load_clip(ClipSpec(image_tower=tower))


def test_hub_weights_are_asked_of_timm_and_offline_failures_say_what_to_do(monkeypatch):
    asked = {}

    def offline(name, **kwargs):
        asked.update(kwargs, name=name)
        raise OSError("no network")

    monkeypatch.setattr(image_tower_module.timm, "create_model", offline)
    with pytest.raises(WeightsError, match="image_weights: package"):
        load_clip(ClipSpec(image_tower=TOWER, image_weights="timm"))
    assert asked["name"] == TOWER and asked["pretrained"] is True
