import pytest
import torch

from trainground.models.fusion import FusionModel


def _batch(n=4, vocab=30, size=32):
    g = torch.Generator().manual_seed(0)
    return {"image": torch.rand(n, 3, size, size, generator=g), "tokens": torch.randint(0, vocab, (n, 12), generator=g)}


def test_outputs_per_modality_set():
    x = _batch()
    fusion = FusionModel(vocab_size=30, num_classes=4)
    out = fusion(x)
    assert out["score"].shape == (4,) and out["boxes"].shape == (4, 64, 8) and fusion.grid == (8, 8)
    assert set(FusionModel(vocab_size=30, num_classes=4, modalities=("text",))(x)) == {"score"}
    assert set(FusionModel(vocab_size=30, num_classes=4, modalities=("image",))(x)) == {"score", "boxes"}
    with pytest.raises(ValueError, match="modalities"):
        FusionModel(vocab_size=30, num_classes=4, modalities=("audio",))


def test_modality_groups_split_the_encoders_and_the_score_needs_both():
    torch.manual_seed(0)
    model = FusionModel(vocab_size=30, num_classes=4)
    groups = model.modality_groups()
    ids = {k: {id(p) for p in v} for k, v in groups.items()}
    assert set(groups) == {"image", "text", "fusion"}
    assert ids["image"].isdisjoint(ids["text"]) and ids["image"].isdisjoint(ids["fusion"])
    assert ids["image"] | ids["text"] | ids["fusion"] == {id(p) for p in model.parameters()}
    text_only = FusionModel(vocab_size=30, num_classes=4, modalities=("text",))
    assert sum(len(v) for v in text_only.modality_groups().values()) == len(list(text_only.parameters()))
    out = model(_batch())
    encoders = list(model.image.parameters()) + groups["text"]
    assert all(g is not None for g in torch.autograd.grad(out["score"].sum(), encoders))  # the score reaches both
    text_from_boxes = torch.autograd.grad(model(_batch())["boxes"].sum(), groups["text"], allow_unused=True)
    assert all(g is None for g in text_from_boxes)  # detection never reaches the text encoder


def test_padding_tokens_do_not_change_the_text_features():
    model = FusionModel(vocab_size=30, num_classes=4, modalities=("text",)).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0, 0]])
    x = {"tokens": tokens}
    longer = {"tokens": torch.cat([tokens, torch.zeros(1, 4, dtype=torch.long)], dim=1)}
    torch.testing.assert_close(model(x)["score"], model(longer)["score"])


def test_extra_layers_keep_the_grid_and_add_convolutions_at_its_resolution():
    base, deep = FusionModel(vocab_size=30, num_classes=4), FusionModel(vocab_size=30, num_classes=4, extra_layers=2)
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.image.modules())
    assert convs(deep) == convs(base) + 2 and deep.grid == base.grid
    assert deep(_batch())["boxes"].shape == (4, 64, 8)
