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
            cutout: int = 0, dtype: torch.dtype = torch.float32, part: tuple[int, int] | None = None
            ) -> torch.Tensor:
    """Pad-and-crop, flip, normalize and cutout a uint8 batch [N, C, H, W], each image independently.

    ``part=(offset, total)``: `x_uint8` is images offset .. offset + N - 1 of a batch of `total` (one rank's shard
    of a global batch); the random numbers are drawn for the whole batch and this part's are used, so the shards
    of all ranks together are augmented exactly as the whole batch would be."""
    n, c, h, w = x_uint8.shape
    dev = x_uint8.device
    offset, total = part or (0, n)

    def draw(fn, *args):
        values = fn(*args, (total, 1, 1), generator=generator, device=dev)
        return values[offset:offset + n]

    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)

    # Crop and flip as one gather: output pixel (i, j) reads input (i + dy, j' + dx) with j' = j or w-1-j, and
    # reads zero where that falls into the padding.
    p = crop_padding
    dy = draw(torch.randint, -p, p + 1)
    dx = draw(torch.randint, -p, p + 1)
    src_c = cols.expand(n, 1, w)
    if flip:
        flipped = draw(torch.rand) < 0.5
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
        cy = draw(torch.randint, 0, h)
        cx = draw(torch.randint, 0, w)
        y0, x0 = cy - cutout // 2, cx - cutout // 2
        r, q = rows.view(1, h, 1), cols.view(1, 1, w)
        hole = (r >= y0) & (r < y0 + cutout) & (q >= x0) & (q < x0 + cutout)   # [N, H, W]
        out = out.masked_fill_(hole.unsqueeze(1), 0.0)
    return out


def flip_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of [N, C, H, W] left-right with probability 1/2."""
    flipped = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device) < 0.5
    return torch.where(flipped, x.flip(-1), x)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of RGB [N, 3, H, W] as [N, 1, H, W]."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle), [N, 3, H, W]."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-12)
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = x.unbind(1)
    h6 = (h % 1.0) * 6.0
    i = torch.floor(h6)
    f = h6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    # For sector i the (r, g, b) are picked from (v, q, p, t) by fixed patterns.
    cand = torch.stack([v, q, p, t], 1)                                    # [N, 4, H, W]
    pattern = torch.tensor([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]], device=x.device)
    pick = pattern[i].permute(0, 3, 1, 2)                                  # [N, 3, H, W]
    return cand.gather(1, pick)


def color_jitter(x: torch.Tensor, generator: torch.Generator, brightness: float = 0.0, contrast: float = 0.0,
                 saturation: float = 0.0, hue: float = 0.0) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in [max(0, 1 - s), 1 + s] and a hue shift in [-hue, hue] (of the
    circle), drawn per image, applied in that fixed order to RGB floats in [0, 1], clamped after each step.

    The ImageNet recipe's ColorJitter(0.4, 0.4, 0.4, 0.2) applies the four in a random order per image; a fixed
    order keeps the batch one set of tensor ops on the device (the distribution of each factor is the same)."""
    n = x.shape[0]

    def factor(strength):  # uniform in [max(0, 1 - s), 1 + s]
        low = max(0.0, 1.0 - strength)
        return low + (1.0 + strength - low) * torch.rand(n, 1, 1, 1, generator=generator, device=x.device)

    if brightness > 0:
        x = (x * factor(brightness)).clamp_(0.0, 1.0)
    if contrast > 0:
        mean = _grayscale(x).mean((1, 2, 3), keepdim=True)
        f = factor(contrast)
        x = (x * f + mean * (1 - f)).clamp_(0.0, 1.0)
    if saturation > 0:
        f = factor(saturation)
        x = (x * f + _grayscale(x) * (1 - f)).clamp_(0.0, 1.0)
    if hue > 0:
        shift = hue * (2.0 * torch.rand(n, 1, 1, generator=generator, device=x.device) - 1.0)
        hsv = rgb_to_hsv(x)
        hsv = torch.stack([(hsv[:, 0] + shift) % 1.0, hsv[:, 1], hsv[:, 2]], 1)
        x = hsv_to_rgb(hsv).clamp_(0.0, 1.0)
    return x
