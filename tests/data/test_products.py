import numpy as np
import pytest

from trainground.data.products import (
    CLASSES,
    VALUE,
    Vocabulary,
    grammar_words,
    make_products,
)


def test_same_seed_same_data_and_other_seed_other_data():
    a, b, c = make_products(40, 3), make_products(40, 3), make_products(40, 4)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.texts == b.texts
    assert not np.array_equal(a.images, c.images)


def test_shapes_ranges_and_padding():
    p = make_products(200, 0, size=32, max_objects=4)
    assert p.images.shape == (200, 3, 32, 32) and p.images.dtype == np.float32
    assert 0 <= p.images.min() and p.images.max() <= 1
    count = (p.classes >= 0).sum(axis=1)
    assert count.min() >= 1 and count.max() <= 4 and len(np.unique(count)) == 4
    # padding rows come last, carry class -1 and zero boxes
    for row, boxes, n in zip(p.classes, p.boxes, count, strict=True):
        assert (row[:n] >= 0).all() and (row[n:] == -1).all() and (boxes[n:] == 0).all()
    real = p.boxes[p.classes >= 0]
    assert (real[:, 2] > real[:, 0]).all() and (real[:, 3] > real[:, 1]).all()
    assert real.min() >= 0 and real.max() <= 32


def test_score_is_quality_plus_object_values_plus_small_noise():
    p = make_products(500, 1, score_noise=0.2)
    value = np.where(p.classes >= 0, VALUE[np.clip(p.classes, 0, None)], 0).sum(axis=1)
    residual = p.score - (1 + 2 * p.quality + value)
    assert abs(residual.mean()) < 0.05 and 0.15 < residual.std() < 0.25


def test_objects_are_drawn_where_their_boxes_are():
    p = make_products(50, 2)
    # inside a box the colour is the object's: its pixels vary less than across the whole image
    i = 0
    x1, y1, x2, y2 = p.boxes[i, 0].astype(int) + np.array([1, 1, -1, -1])
    inside = p.images[i][:, y1:y2, x1:x2].reshape(3, -1).std(axis=1).mean()
    assert inside < p.images[i].reshape(3, -1).std(axis=1).mean() + 0.05


def test_review_names_a_present_object_and_its_tone_follows_quality():
    p = make_products(600, 5)
    names = {0: ("box", "crate", "carton"), 1: ("ball", "sphere"), 2: ("bottle", "flask"), 3: ("tag", "label")}
    for text, classes in zip(p.texts[:100], p.classes[:100], strict=True):
        words = set(text.split())
        assert any(words & set(names[c]) for c in classes[classes >= 0])
    good = np.array([("excellent" in t or "superb" in t or "perfect" in t) for t in p.texts])
    assert p.quality[good].mean() > 0.7
    assert p.quality[~good].mean() < p.quality[good].mean() - 0.2


def test_vocabulary_covers_the_grammar_and_is_deterministic():
    v = Vocabulary()
    p = make_products(300, 0)
    ids = v.encode(p.texts, max_len=32)
    assert (ids != Vocabulary.UNK).all()
    assert ids.shape == (300, 32) and (ids[:, 0] > 1).all()
    assert Vocabulary().words == v.words and v.words[:2] == ["<pad>", "<unk>"]
    assert set(grammar_words()) <= set(v.words)
    assert v.encode(["unheard words ."], max_len=4).tolist() == [[1, 1, v.ids["."], 0]]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n >= 1"):
        make_products(0, 0)
    assert len(CLASSES) == len(VALUE)


def test_the_table_loader_points_products_users_to_the_multi_target_loader():
    from trainground.data import load_builtin
    from trainground.errors import DataError

    with pytest.raises(DataError, match="load_builtin_multitarget"):
        load_builtin("builtin:products")
