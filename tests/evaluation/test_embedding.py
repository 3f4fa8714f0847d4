import torch
from builders import base_parameters, tiny_reid_checkpoint

from clip_reid.data.splits import select_split
from clip_reid.evaluation.embedding import embed_splits, untrained_checkpoint
from clip_reid.inference import FeatureExtractor
from clip_reid.modeling.model_settings import ModelSettings


def test_each_split_is_embedded_as_the_feature_extractor_embeds_it(tiny_index):
    checkpoint = tiny_reid_checkpoint(tiny_index)
    query, gallery = embed_splits(checkpoint, tiny_index, ("query", "gallery"),
                                  torch.device("cpu"), batch_size=5, flip=False, dtype="fp32",
                                  num_workers=0)
    expected = select_split(tiny_index, "gallery")
    assert gallery.paths == tuple(expected["path"]) and len(query) == len(
        select_split(tiny_index, "query"))
    assert gallery.pids.tolist() == expected["pid"].tolist()
    assert gallery.camids.tolist() == expected["camid"].tolist()
    assert query.fingerprint == gallery.fingerprint == checkpoint.fingerprint
    direct = FeatureExtractor(checkpoint, batch_size=7)(list(gallery.paths))
    assert torch.allclose(gallery.features, direct, atol=1e-5)


def test_the_untrained_baseline_has_the_training_identities_and_live_features(
        tiny_index, tiny_backbone):
    model = ModelSettings.from_params(dict(base_parameters("model")["model"],
                                           image_size=[64, 32]), "model")
    baseline = untrained_checkpoint(tiny_index, tiny_backbone, model, torch.device("cpu"))
    train = select_split(tiny_index, "train")
    assert baseline.config.num_classes == train["label"].max() + 1
    assert baseline.has_text_tower and baseline.normalization.mean == model.normalization()[0]
    features = FeatureExtractor(baseline)(train["path"].tolist()[:6])
    assert features.std(0).mean() > 1e-3  # BN statistics recalibrated: features differ
