"""Batched augmentation on the batch's own device.

Every random number comes from the caller's `torch.Generator` (on that device), and nothing reads values back to
the host, so augmentation never stalls the GPU and a given generator state always yields the same batch (exact
resume). Semantics follow the DARTS / torchvision pipeline: zero-pad and random-crop, flip with p=0.5, normalize,
then cutout (zeros after normalization).
"""

from __future__ import annotations

import torch


def _channel_view(values, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype, device=like.device).reshape(1, -1, 1, 1)


def normalize(x_uint8: torch.Tensor, mean, std, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(x / 255 - mean) / std per channel, for uint8 [N, C, H, W]; mean/std may be sequences or tensors."""
    x = x_uint8.to(dtype) / 255.0  # out of place: never modify a caller's float input
    return x.sub_(_channel_view(mean, x, dtype)).div_(_channel_view(std, x, dtype))


def augment(x_uint8: torch.Tensor, mean, std, generator: torch.Generator, crop_padding: int = 4, flip: bool = True,
            cutout: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pad-and-crop, flip, normalize and cutout a uint8 batch [N, C, H, W], each image independently."""
    n, c, h, w = x_uint8.shape
    dev = x_uint8.device
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)

    # Crop and flip as one gather: output pixel (i, j) reads input (i + dy, j' + dx) with j' = j or w-1-j, and
    # reads zero where that falls into the padding.
    p = crop_padding
    dy = torch.randint(-p, p + 1, (n, 1, 1), generator=generator, device=dev)
    dx = torch.randint(-p, p + 1, (n, 1, 1), generator=generator, device=dev)
    src_c = cols.expand(n, 1, w)
    if flip:
        flipped = torch.rand(n, 1, 1, generator=generator, device=dev) < 0.5
        src_c = torch.where(flipped, (w - 1) - cols, cols)
    src_r = rows.view(1, h, 1) + dy            # [N, H, 1]
    src_c = src_c + dx                          # [N, 1, W]
    inside = (src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)   # [N, H, W]
    flat = src_r.clamp(0, h - 1) * w + src_c.clamp(0, w - 1)            # [N, H, W]
    pixels = x_uint8.reshape(n, c, h * w).gather(2, flat.reshape(n, 1, h * w).expand(n, c, h * w))
    pixels = pixels.reshape(n, c, h, w) * inside.unsqueeze(1)

    out = normalize(pixels, mean, std, dtype)

    if cutout > 0:
        # A cutout x cutout square whose centre is uniform over the pixels, clipped at the borders (DARTS Cutout,
        # which for even sizes spans centre - size/2 .. centre + size/2 - 1).
        cy = torch.randint(0, h, (n, 1, 1), generator=generator, device=dev)
        cx = torch.randint(0, w, (n, 1, 1), generator=generator, device=dev)
        y0, x0 = cy - cutout // 2, cx - cutout // 2
        r, q = rows.view(1, h, 1), cols.view(1, 1, w)
        hole = (r >= y0) & (r < y0 + cutout) & (q >= x0) & (q < x0 + cutout)   # [N, H, W]
        out = out.masked_fill_(hole.unsqueeze(1), 0.0)
    return out
