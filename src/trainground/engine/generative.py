"""Watch a generator over a two-player run: a sample grid (PNG) and generative metrics per epoch."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from trainground.engine.atomic import atomic_write
from trainground.engine.callbacks import Callback
from trainground.engine.manifest import make_dirs
from trainground.metrics import GenerativeEvaluator


def image_grid(images: Tensor, *, columns: int = 8, scale: int = 3) -> Image.Image:
    """Images ``[N, C, H, W]`` in [-1, 1] tiled into one grey/RGB PIL image (1-pixel gutters)."""
    x = ((images.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    rows = -(-n // columns)
    grid = torch.full((c, rows * (h + 1) + 1, columns * (w + 1) + 1), 255, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, columns)
        grid[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + k * (w + 1):1 + k * (w + 1) + w] = x[i]
    array = grid.permute(1, 2, 0).numpy()
    mode = "L" if c == 1 else "RGB"
    image = Image.fromarray(array[..., 0] if c == 1 else array, mode=mode)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def save_png(path: Any, image: Image.Image) -> None:
    """Write ``image`` as a PNG atomically (its folder listed in the run's manifest first)."""
    make_dirs(Path(path).parent)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


class GeneratorWatcher(Callback):
    """Game-level callback of ``fit_two_player``: at each epoch end, draws ``samples`` images from
    the generator with a fixed noise (its own generator: the run's RNG is not touched, so watching
    never changes the trajectory), adds the generative metrics to ``state.epoch_metrics`` and
    writes ``samples/epoch-NNN.png`` (the first 64 samples). ``real_ssim_intra`` (the real data's
    mutual SSIM) goes next to the metrics, so the run folder holds the collapse check's reference.

    Args:
        evaluator: the metrics' yardstick (a classifier trained on the real data).
        generator: name of the generating player.
        latent_dim: width of the noise.
        samples: images drawn per evaluation (1000: enough for 10 classes, see metrics.coverage).
        every: evaluate every N epochs (and always at the last).
        seed: of the fixed noise.
    """

    state_key = "GeneratorWatcher"

    def __init__(self, evaluator: GenerativeEvaluator | None, *, generator: str = "generator", latent_dim: int,
                 samples: int = 1000, every: int = 1, seed: int = 1234) -> None:
        self.evaluator, self.generator, self.every = evaluator, generator, max(1, every)
        self.noise = torch.randn(samples, latent_dim, generator=torch.Generator().manual_seed(seed))
        self.last: dict[str, float] = {}
        self._real_ssim: float | None = None

    @torch.no_grad()
    def sample(self, model: torch.nn.Module) -> Tensor:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # BatchNorm's running statistics: no update, no batch dependence
        try:
            return torch.cat([model(z.to(device)).cpu() for z in self.noise.split(500)])
        finally:
            model.train(was_training)

    def on_epoch_end(self, state: Any) -> None:
        last = state.epoch + 1 >= state.config.epochs
        if (state.epoch + 1) % self.every and not last:
            return
        images = self.sample(state.players[self.generator].model)
        if self.evaluator is not None:
            self.last = self.evaluator.evaluate(images)
            state.epoch_metrics.update({f"gen_{k}": v for k, v in self.last.items()})
            if self._real_ssim is None:  # the diversity level of the real data, for the collapse check
                self._real_ssim = self.evaluator.real_ssim_intra()
            state.epoch_metrics["real_ssim_intra"] = self._real_ssim
        if state.run_dir is not None:
            save_png(state.run_dir.path / "samples" / f"epoch-{state.epoch:03d}.png", image_grid(images[:64]))


def sample_grid_paths(run_path: Any) -> list[Path]:
    """The sample grids of a run folder, oldest first."""
    folder = Path(run_path) / "samples"
    return sorted(folder.glob("epoch-*.png")) if folder.is_dir() else []


__all__ = ["GeneratorWatcher", "image_grid", "sample_grid_paths", "save_png"]
