"""Synthetic product images with review texts: a domain-randomised dataset for fusion models.

Each sample is a small RGB image holding 1-4 simple shapes that stand for product classes
(``box`` a square, ``ball`` a disc, ``bottle`` a tall rectangle, ``tag`` a triangle), each with
an exact bounding box and class, plus a one-sentence review written by a small grammar, and a
numeric score (the regression target).

Domain randomisation (Tobin et al. 2017): everything that should not matter is drawn at
random - object positions, scales, colours and stripe textures, background colour gradients,
global lighting (brightness and a lighting ramp), pixel noise and unlabelled clutter
(small bars of random colour) - so a model must learn the shapes, not the rendering.

The score couples both modalities, so neither alone can predict it:

    score = 1 + 2 * quality + sum(VALUE[class] for each object) + noise

``quality`` (hidden, uniform in [0, 1]) shows only in the review's wording (sentiment
adjectives drawn from a noisy quality level); the objects show fully only in the image
(the review names one of them and, half of the time, how many there are).

References:
    Tobin, Fong, Ray, Schneider, Zaremba, Abbeel. "Domain Randomization for Transferring
    Deep Neural Networks from Simulation to the Real World." IROS 2017.
    https://arxiv.org/abs/1703.06907
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from trainground.data.tasks import MultiTargetDataset, TaskSpec

CLASSES = ("box", "ball", "bottle", "tag")
# What each object adds to the score: the image-only part of the target.
VALUE = np.array([0.5, 1.0, 1.5, 2.0], dtype=np.float32)
_NAMES = {0: ("box", "crate", "carton"), 1: ("ball", "sphere"), 2: ("bottle", "flask"), 3: ("tag", "label")}
# Sentiment words by quality level 0 (worst) .. 4 (best).
_SENTIMENT = (
    ("terrible", "awful", "broken"),
    ("poor", "disappointing", "flimsy"),
    ("okay", "average", "decent"),
    ("good", "nice", "solid"),
    ("excellent", "superb", "perfect"),
)
_OPENERS = ("i bought", "we got", "my friend ordered", "this listing shows", "arrived today")
_CLOSERS = ("would buy again", "not sure yet", "shipping was fast", "as described", "for the price")
_COUNTS = ("one", "two", "three", "four")
_COLOURS = ("red", "green", "blue", "yellow", "dark", "bright")
_QUALITY_NOISE = 0.6  # std of the quality level the review's adjectives are drawn from


@dataclass(frozen=True)
class Products:
    """A generated product dataset (arrays, index ``i`` is sample ``i``).

    Attributes:
        images: ``[N, 3, S, S]`` float32 in [0, 1].
        boxes: ``[N, M, 4]`` float32 ``(x1, y1, x2, y2)`` in pixels, ``M = max_objects``;
            padding rows are 0.
        classes: ``[N, M]`` int64 class ids into :data:`CLASSES`, ``-1`` for padding.
        texts: ``N`` review sentences.
        score: ``[N]`` float32, the regression target (noisy).
        quality: ``[N]`` float32 in [0, 1], the hidden quality the review's tone follows.
    """

    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    texts: tuple[str, ...]
    score: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def _place(rng: np.random.Generator, n: int, size: int, max_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes and classes: 1..max_objects objects per image that overlap little (IoU <= 0.2)."""
    count = rng.integers(1, max_objects + 1, size=n)
    classes = rng.integers(0, len(CLASSES), size=(n, max_objects))
    side = rng.uniform(0.22, 0.38, size=(n, max_objects)) * size  # object scale
    aspect = np.where(classes == 2, rng.uniform(1.8, 2.4, size=(n, max_objects)), rng.uniform(0.85, 1.15, size=(n, max_objects)))
    w = np.where(classes == 2, side / np.sqrt(aspect), side)
    h = np.where(classes == 2, side * np.sqrt(aspect), side * np.where(classes == 0, aspect, 1.0))
    h = np.where(classes == 1, w, h)  # a disc is round
    h = np.minimum(h, size - 2.0)
    boxes = np.zeros((n, max_objects, 4), dtype=np.float32)
    keep = np.zeros((n, max_objects), dtype=bool)
    for k in range(max_objects):
        wanted = k < count
        best = np.zeros((n, 4), dtype=np.float32)
        placed = np.zeros(n, dtype=bool)
        for _ in range(12):  # rejection sampling, vectorised over the images still looking
            x1 = rng.uniform(0, size - w[:, k])
            y1 = rng.uniform(0, size - h[:, k])
            cand = np.stack([x1, y1, x1 + w[:, k], y1 + h[:, k]], axis=1).astype(np.float32)
            ok = np.ones(n, dtype=bool)
            for j in range(k):
                ok &= ~keep[:, j] | (_iou(cand, boxes[:, j]) <= 0.2)
            take = ok & ~placed
            best[take] = cand[take]
            placed |= ok
        keep[:, k] = wanted & placed
        boxes[:, k] = np.where(keep[:, k, None], best, 0.0)
    classes = np.where(keep, classes, -1)
    order = np.argsort(~keep, axis=1, kind="stable")  # real objects first, padding last
    return np.take_along_axis(boxes, order[:, :, None], axis=1), np.take_along_axis(classes, order, axis=1)


def _area(x: np.ndarray) -> np.ndarray:
    return (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``[n, 4]`` boxes."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    return inter / np.maximum(_area(a) + _area(b) - inter, 1e-9)


def _render(rng: np.random.Generator, boxes: np.ndarray, classes: np.ndarray, size: int) -> np.ndarray:
    """Draw the objects over randomised backgrounds, clutter and lighting."""
    n, m = classes.shape
    f32 = np.float32
    grid = np.arange(size, dtype=f32) + f32(0.5)
    ys, xs = grid[None, :, None], grid[None, None, :]  # pixel centres, [1, S, 1] and [1, 1, S]

    def draw(low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
        return rng.uniform(low, high, shape).astype(f32)  # float32 throughout: half the memory traffic

    # Background: a random two-colour gradient in a random direction.
    c0, c1 = draw(0, 1, (n, 3, 1, 1)), draw(0, 1, (n, 3, 1, 1))
    angle = draw(0, 2 * np.pi, (n, 1, 1))
    ramp = ((np.cos(angle) * xs + np.sin(angle) * ys) / size + 1) / 2  # [n, S, S] in [0, 1]
    img = c0 + (c1 - c0) * ramp[:, None]
    # Clutter: 0-3 small unlabelled bars, under the objects.
    for _ in range(3):
        on = rng.uniform(size=n) < 0.5
        cx, cy = draw(0, size, (2, n, 1, 1))
        bw, bh = draw(0.5, 1.5, (2, n, 1, 1)) * np.where(rng.uniform(size=(n, 1, 1)) < 0.5, f32(1), f32(3))
        mask = (np.abs(xs - cx) < bw) & (np.abs(ys - cy) < bh) & on[:, None, None]
        np.copyto(img, draw(0, 1, (n, 3, 1, 1)), where=mask[:, None])
    for k in range(m):
        cls = classes[:, k][:, None, None]
        x1, y1, x2, y2 = (boxes[:, k, i][:, None, None] for i in range(4))
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        disc = ((xs - cx) / np.maximum(hw, 1e-3)) ** 2 + ((ys - cy) / np.maximum(hh, 1e-3)) ** 2 <= 1.0
        # Triangle pointing up: apex at the top centre, base at the bottom edge.
        tri = inside & (np.abs(xs - cx) <= hw * (ys - y1) / np.maximum(y2 - y1, 1e-3))
        mask = np.where(cls == 1, disc, np.where(cls == 3, tri, inside)) & (cls >= 0)
        colour = draw(0, 1, (n, 3, 1, 1))
        # Texture: stripes of random frequency and direction, of random strength.
        freq, phase, direction = draw(0.3, 1.5, (n, 1, 1)), draw(0, 2 * np.pi, (n, 1, 1)), draw(0, np.pi, (n, 1, 1))
        stripes = np.sin(freq * (np.cos(direction) * xs + np.sin(direction) * ys) + phase)
        texture = 1 + draw(0, 0.35, (n, 1, 1, 1)) * stripes[:, None]
        np.copyto(img, np.clip(colour * texture, 0, 1), where=mask[:, None])
    # Lighting: global brightness and a lighting ramp, then sensor noise.
    light = draw(0.6, 1.3, (n, 1, 1, 1)) * (1 + draw(-0.3, 0.3, (n, 1, 1, 1)) * (ramp[:, None] - 0.5))
    img = img * light + rng.standard_normal(img.shape, dtype=f32) * f32(0.03)
    return np.clip(img, 0, 1, out=img)


def _reviews(rng: np.random.Generator, classes: np.ndarray, quality: np.ndarray) -> tuple[str, ...]:
    """One review per image; every random choice is drawn for all images at once."""
    n = len(quality)
    level = np.clip(np.rint(quality * 4 + rng.normal(0, _QUALITY_NOISE, n)), 0, 4).astype(int)
    count = (classes >= 0).sum(axis=1)
    named = classes[np.arange(n), (rng.uniform(size=n) * count).astype(int)]  # one present object
    u = rng.uniform(size=(n, 7))

    def pick(options, col):  # the i-th image's choice among options, from its col-th uniform draw
        return options[int(u[i, col] * len(options))]

    out = []
    for i in range(n):
        thing = f"{pick(_COLOURS, 0)} {pick(_NAMES[int(named[i])], 1)}"
        thing = f"{_COUNTS[count[i] - 1]} items including a {thing}" if u[i, 2] < 0.5 else f"a {thing}"
        words = _SENTIMENT[level[i]]
        out.append(f"{pick(_OPENERS, 3)} {thing} . quality is {pick(words, 4)} and it looks {pick(words, 5)} , "
                   f"{pick(_CLOSERS, 6)}")
    return tuple(out)


def make_products(n: int, seed: int, *, size: int = 32, max_objects: int = 4, score_noise: float = 0.2) -> Products:
    """Generate ``n`` domain-randomised product samples (a few thousand take about a second).

    Args:
        n: number of samples.
        seed: everything is drawn from ``numpy.random.default_rng(seed)``; a held-out split
            is another seed (a different draw of every randomised factor).
        size: image side in pixels.
        max_objects: most objects per image (1..max_objects are drawn); also the padded
            length of ``boxes`` and ``classes``.
        score_noise: std of the Gaussian noise added to the score.

    Returns:
        A :class:`Products`.
    """
    if n < 1 or size < 16 or max_objects < 1:
        raise ValueError(f"make_products needs n >= 1, size >= 16, max_objects >= 1; got {n}, {size}, {max_objects}")
    rng = np.random.default_rng(seed)
    boxes, classes = _place(rng, n, size, max_objects)
    images = _render(rng, boxes, classes, size)
    quality = rng.uniform(0, 1, n).astype(np.float32)
    texts = _reviews(rng, classes, quality)
    objects_value = np.where(classes >= 0, VALUE[np.clip(classes, 0, None)], 0.0).sum(axis=1)
    score = 1 + 2 * quality + objects_value + rng.normal(0, score_noise, n)
    return Products(images, boxes, classes.astype(np.int64), texts, score.astype(np.float32), quality)


def grammar_words() -> list[str]:
    """Every word the review grammar can write, sorted (the vocabulary's content)."""
    parts = [*_OPENERS, *_CLOSERS, *_COUNTS, *_COLOURS, "items including a", ". quality is and it looks ,"]
    parts += [w for names in _NAMES.values() for w in names] + [w for level in _SENTIMENT for w in level]
    return sorted({w for p in parts for w in p.split()})


_TOKEN = re.compile(r"[a-z0-9]+|[.,!?]")


class Vocabulary:
    """A fixed word -> id table: 0 is padding, 1 an unknown word, then ``words`` in order.

    Deterministic (no frequencies, no randomness): the same words give the same ids.

    Args:
        words: the known words (default: the products grammar's words).
    """

    PAD, UNK = 0, 1

    def __init__(self, words: list[str] | None = None) -> None:
        self.words = ["<pad>", "<unk>", *(grammar_words() if words is None else words)]
        self.ids = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def tokenize(self, text: str) -> list[str]:
        """Lower-case words and punctuation marks."""
        return _TOKEN.findall(text.lower())

    def encode(self, texts: list[str] | tuple[str, ...], max_len: int = 32) -> np.ndarray:
        """``[len(texts), max_len]`` int64 ids, truncated or right-padded with 0."""
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        for i, text in enumerate(texts):
            ids = [self.ids.get(w, self.UNK) for w in self.tokenize(text)][:max_len]
            out[i, : len(ids)] = ids
        return out


def products_dataset(n: int = 2000, seed: int = 0, *, size: int = 32, max_objects: int = 4, max_len: int = 32,
                     vocabulary: Vocabulary | None = None) -> MultiTargetDataset:
    """:func:`make_products` as a multi-target dataset (what ``builtin:products`` loads).

    Items are ``(index, {"image": [3, S, S], "tokens": [max_len]}, {"score": [], "boxes": [M, 5]})``;
    ``boxes`` rows are ``(x1, y1, x2, y2, class)`` with class -1 for padding. Tasks:
    ``score`` (kind ``"regression"``) and ``boxes`` (kind ``"detection"``, ``num_classes`` 4).
    """
    products = make_products(n, seed, size=size, max_objects=max_objects)
    vocabulary = vocabulary or Vocabulary()
    features = {"image": torch.from_numpy(products.images), "tokens": torch.from_numpy(vocabulary.encode(products.texts, max_len))}
    boxes = torch.cat([torch.from_numpy(products.boxes), torch.from_numpy(products.classes)[..., None].float()], dim=-1)
    tasks = (TaskSpec("score", "regression"),
             TaskSpec("boxes", "detection", len(CLASSES), CLASSES, shape=(max_objects, 5)))
    return MultiTargetDataset(features, {"score": torch.from_numpy(products.score), "boxes": boxes},
                              torch.arange(n), tasks, kind="image", name=f"builtin:products(seed={seed})")
