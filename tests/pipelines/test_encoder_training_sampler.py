"""encoder_training.sampler decides the order stage 2 trains on (exact by default, or official)."""

import lightning as L
import pandas as pd
import pytest
import torch

from clip_reid.data.samplers import RandomIdentitySampler
from clip_reid.data.splits import select_split
from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.encoder_training import EncoderTrainingSettings, train_encoder
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.modeling.trainer import TrainerSettings


class _SeenImages(L.Callback):
    """The training-split rows of every batch the model was trained on, in order."""

    def __init__(self) -> None:
        self.rows: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rows.extend(batch["index"].tolist())


def _order(labels: list[int], settings: EncoderTrainingSettings, policy: str) -> list[int]:
    sampler = RandomIdentitySampler(labels, settings.batch_size, settings.num_instances, seed=0,
                                    policy=policy)
    return list(sampler)


@pytest.mark.parametrize("policy", ["exact", "official"])
def test_the_sampler_parameter_chooses_the_identity_policy(tiny_index, tiny_params, policy):
    stage2 = tiny_params["encoder_training"]
    if policy == "official":
        stage2["sampler"] = policy
    else:
        assert stage2["sampler"] == "exact"  # the demo default
    stage2["max_epochs"] = 1
    settings = EncoderTrainingSettings.from_params(stage2, "encoder_training")
    train = select_split(tiny_index, "train")
    seen = _SeenImages()
    train_encoder(train, TextFeatures.of_identities(torch.randn(8, 128)),
                  ClipBackbone.of(ClipSpec(**tiny_params["model"]["clip"])),
                  ModelSettings.from_params(tiny_params["model"], "model"), settings,
                  TrainerSettings.from_params(tiny_params["trainer"], "trainer"), seed=0,
                  callbacks=[seen], image_captions=pd.DataFrame(
                      columns=["path", "pid", "caption", "source"]))
    labels = train.reset_index(drop=True)["label"].tolist()
    other = "official" if policy == "exact" else "exact"
    assert seen.rows == _order(labels, settings, policy) != _order(labels, settings, other)
