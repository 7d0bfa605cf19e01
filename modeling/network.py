"""The chest-nodule CNN and the per-image intensity statistics served next to its score.

Self-contained on purpose (torch and numpy only): export copies this file beside Triton's ``model.py``,
so the served model runs exactly the code that was trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

#: Side of the square input image, in pixels.
IMAGE_SIZE = 128
#: Width of the embedding the drift monitors summarise.
EMBEDDING_DIM = 8
#: Names of the columns of :func:`image_statistics`, in order.
STAT_NAMES = ("mean", "std", "p5", "p50", "p95")
#: Output tensors of the served model, in order: raw logit (B, 1), embedding (B, 8), statistics (B, 5).
OUTPUT_NAMES = ("LOGIT", "EMBEDDING", "STATS")
#: Default channel widths of the four convolution blocks.
DEFAULT_CHANNELS = (8, 16, 32, 32)
#: Kernel size of the first block: wide enough to see a small nodule and its surround at full resolution.
DEFAULT_FIRST_KERNEL = 5
#: Centre sigmas (pixels) of the first-layer filters that start as blob detectors.
BLOB_SIGMAS = (0.7, 1.0, 1.4, 2.0)
#: Fixed input scaling: roughly the pixel mean and SD of the baseline hospital. A fixed affine map (not
#: per-image standardisation) keeps intensity shifts visible to the model, as they would be in the clinic.
INPUT_CENTER = 0.4
INPUT_SCALE = 0.25
_QUANTILES = (0.05, 0.50, 0.95)


def center_surround_kernels(size: int, sigmas: tuple[float, ...]) -> torch.Tensor:
    """Difference-of-Gaussians kernels (centre sigma, surround 2 x sigma), zero-sum and unit-norm.

    Returns:
        Tensor of shape (len(sigmas), 1, size, size).
    """
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    radius2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    kernels = []
    for sigma in sigmas:
        centre = torch.exp(-radius2 / (2.0 * sigma**2))
        surround = torch.exp(-radius2 / (8.0 * sigma**2))
        kernel = centre / centre.sum() - surround / surround.sum()
        kernels.append(kernel / kernel.norm())
    return torch.stack(kernels).unsqueeze(1).to(torch.float32)


class _ConvBlock(nn.Module):
    """Convolution, ReLU, then 2x2 max pooling (halves the resolution)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2)
        self.pool = nn.MaxPool2d(2)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.pool(torch.relu(self.conv(x)))
        return pooled


class NoduleNet(nn.Module):
    """Small CNN scoring a chest radiograph for a pulmonary nodule.

    Four convolution blocks, each halving the resolution. Every block's feature map is max-pooled over the
    image and the last one is also average-pooled; the concatenation feeds an embedding layer and a
    one-logit head.

    Why this shape: a nodule covers a few pixels of a 128x128 image, so its evidence must survive global
    pooling. Max pooling of every block gives the head a short path to the early, high-resolution
    detectors, and there is no normalisation layer because statistics over the whole image (group or batch
    norm) drown the few nodule pixels early in training. Without normalisation a study's outputs also do not
    depend on the rest of its batch, so Triton's dynamic batching cannot change a score.

    Example:
        >>> net = NoduleNet()
        >>> logit, embedding = net(torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE))
        >>> tuple(logit.shape), tuple(embedding.shape)
        ((2, 1), (2, 8))
    """

    def __init__(
        self,
        channels: tuple[int, ...] = DEFAULT_CHANNELS,
        embedding_dim: int = EMBEDDING_DIM,
        first_kernel: int = DEFAULT_FIRST_KERNEL,
    ) -> None:
        """Build the layers (He initialisation from torch's global generator, plus blob-detector filters).

        Args:
            channels: Output channels of each convolution block.
            embedding_dim: Width of the embedding layer.
            first_kernel: Kernel size of the first block (the others use 3).
        """
        super().__init__()
        self.channels = tuple(channels)
        self.embedding_dim = embedding_dim
        self.first_kernel = first_kernel
        widths = (1, *channels)
        kernels = (first_kernel,) + (3,) * (len(channels) - 1)
        blocks = [_ConvBlock(a, b, k) for a, b, k in zip(widths, widths[1:], kernels, strict=False)]
        self.blocks = nn.ModuleList(blocks)
        self.embedding = nn.Linear(sum(channels) + channels[-1], embedding_dim)
        self.head = nn.Linear(embedding_dim, 1)
        first = blocks[0].conv
        blobs = min(len(BLOB_SIGMAS), first.out_channels)
        # The first filters (up to four) start as centre-surround blob detectors at the scales of small
        # nodules, scaled like their random neighbours: from a purely random start the network needs many
        # more steps to find the few-pixel signal.
        with torch.no_grad():
            blob_kernels = center_surround_kernels(first_kernel, BLOB_SIGMAS[:blobs])
            random_part = first.weight[blobs:]
            scale = random_part.flatten(1).norm(dim=1).mean() if random_part.numel() else torch.tensor(1.0)
            first.weight[:blobs] = blob_kernels * scale

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> NoduleNet:
        """Rebuild the network a state dict was saved from, with its weights loaded.

        Raises:
            ValueError: If the state dict does not come from a NoduleNet.
        """
        channels: list[int] = []
        while (key := f"blocks.{len(channels)}.conv.weight") in state_dict:
            channels.append(int(state_dict[key].shape[0]))
        if not channels or "embedding.weight" not in state_dict:
            raise ValueError("not a NoduleNet state dict: no blocks.<i>.conv.weight or embedding.weight")
        network = cls(
            tuple(channels),
            embedding_dim=int(state_dict["embedding.weight"].shape[0]),
            first_kernel=int(state_dict["blocks.0.conv.weight"].shape[-1]),
        )
        network.load_state_dict(state_dict)
        return network

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every convolution block for raw images ``x`` (training attaches losses to them)."""
        h = (x - INPUT_CENTER) / INPUT_SCALE
        maps = []
        for block in self.blocks:
            h = block(h)
            maps.append(h)
        return maps

    def readout(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logit and embedding from the block outputs of :meth:`feature_maps`."""
        pooled = [m.amax(dim=(2, 3)) for m in maps]
        pooled.append(maps[-1].mean(dim=(2, 3)))
        embedding = self.embedding(torch.cat(pooled, dim=1))
        return self.head(embedding), embedding

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch.

        Args:
            x: Images of shape (B, 1, 128, 128), raw pixel values as the simulator/scanner produces them.

        Returns:
            The logit, shape (B, 1), and the embedding, shape (B, 8).
        """
        return self.readout(self.feature_maps(x))


def image_statistics(x: torch.Tensor) -> torch.Tensor:
    """Per-image intensity statistics: mean, SD, 5th, 50th and 95th percentile.

    The SD is the population SD and percentiles interpolate linearly between order statistics (numpy's
    default), computed in float64 so they agree with a numpy oracle to float32 precision.

    Args:
        x: Images of shape (B, ...); every axis after the first is pooled.

    Returns:
        Float32 tensor of shape (B, 5), columns in :data:`STAT_NAMES` order.
    """
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    n = flat.shape[1]
    ordered = torch.sort(flat, dim=1).values
    positions = torch.tensor(_QUANTILES, dtype=torch.float64) * (n - 1)
    lower = positions.floor().long()
    upper = torch.clamp(lower + 1, max=n - 1)
    fraction = positions - lower.to(torch.float64)
    low_values = ordered[:, lower]
    percentiles = low_values + (ordered[:, upper] - low_values) * fraction
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, correction=0, keepdim=True)
    return torch.cat([mean, std, percentiles], dim=1).to(torch.float32)


class InferenceEngine:
    """Runs a trained :class:`NoduleNet` on numpy images: what the Triton model does, without Triton.

    Example:
        >>> engine = InferenceEngine(NoduleNet())
        >>> outputs = engine.predict(np.zeros((2, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32))
        >>> {name: value.shape for name, value in outputs.items()}
        {'LOGIT': (2, 1), 'EMBEDDING': (2, 8), 'STATS': (2, 5)}
    """

    def __init__(self, network: NoduleNet, chunk: int = 256) -> None:
        """Wrap a network (switched to eval mode).

        Args:
            network: The trained network.
            chunk: Images run through the network at once (bounds memory, does not change results).
        """
        self._network = network.eval()
        self._chunk = chunk

    @property
    def network(self) -> NoduleNet:
        """The wrapped network."""
        return self._network

    @classmethod
    def from_weights(cls, path: str | Path, chunk: int = 256) -> InferenceEngine:
        """Load a state dict saved with ``torch.save`` and rebuild the network it belongs to.

        Args:
            path: The weights file.
            chunk: See :meth:`__init__`.
        """
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls(NoduleNet.from_state_dict(state), chunk)

    @staticmethod
    def validate(images: ArrayLike) -> NDArray[np.float32]:
        """Check a batch of images and return it as contiguous float32.

        Args:
            images: Array of shape (B, 1, 128, 128), any float dtype.

        Raises:
            ValueError: If the shape is wrong or a value is not finite.
        """
        array = np.ascontiguousarray(images, dtype=np.float32)
        if array.ndim != 4 or array.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must have shape (B, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("images contain NaN or infinite values")
        return array

    def predict(self, images: ArrayLike) -> dict[str, NDArray[np.float32]]:
        """Score a batch.

        Args:
            images: Array of shape (B, 1, 128, 128) (any float dtype; converted to float32).

        Returns:
            ``LOGIT`` (B, 1), ``EMBEDDING`` (B, 8) and ``STATS`` (B, 5), all float32.

        Raises:
            ValueError: If the shape is wrong or a value is not finite.
        """
        array = self.validate(images)
        parts: dict[str, list[NDArray[np.float32]]] = {name: [] for name in OUTPUT_NAMES}
        with torch.inference_mode():
            for start in range(0, array.shape[0], self._chunk):
                x = torch.from_numpy(array[start : start + self._chunk])
                logit, embedding = self._network(x)
                for name, value in zip(OUTPUT_NAMES, (logit, embedding, image_statistics(x)), strict=True):
                    parts[name].append(value.numpy().astype(np.float32, copy=False))
        empty = {"LOGIT": 1, "EMBEDDING": self._network.head.in_features, "STATS": len(STAT_NAMES)}
        return {
            name: np.concatenate(chunks) if chunks else np.zeros((0, empty[name]), dtype=np.float32)
            for name, chunks in parts.items()
        }
