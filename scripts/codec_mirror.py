"""The wire round trip of crates/bottlenet-codec in numpy and Pillow, for scripts/pytorch_bench.py.

It mirrors quantize.rs (paper eq. 1), tile.rs (§2.2) and the version-1 frame of frame.rs, with
Pillow's JPEG in place of ours: quantize → tile → JPEG → 28-byte header with CRC-32, and the
reverse. It also makes the synthetic post-ReLU features of synthetic.rs (same recipe, another
random generator).
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image

QUANT_BITS = 8


def relu_like(shape, seed):
    """A post-ReLU-looking tensor as in bottlenet-codec's synthetic.rs: three low-frequency waves
    per channel plus mild noise, about half the values clamped to zero. Same recipe, different
    random generator (numpy PCG64, not ChaCha8), so not the same numbers."""
    c, h, w = shape
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty(shape, dtype=np.float32)
    for ch in range(c):
        amp = rng.uniform(0.5, 2.0, 3)
        phase = rng.uniform(0.0, 2 * np.pi, 3)
        fx = rng.uniform(0.1, 0.6, 3)
        fy = rng.uniform(0.1, 0.6, 3)
        bias = rng.uniform(-0.8, 0.2)
        smooth = sum(amp[k] * np.sin(fx[k] * xs + fy[k] * ys + phase[k]) for k in range(3))
        noise = rng.uniform(-0.05, 0.05, (h, w))
        out[ch] = np.maximum(smooth / 3.0 + bias + noise, 0.0)
    return out


def tile_grid(channels):
    """(across, down) as TileGrid::for_channels: k = ceil(log2 C), 2^ceil(k/2) x 2^floor(k/2)."""
    k = (max(channels, 1) - 1).bit_length()
    return 1 << ((k + 1) // 2), 1 << (k // 2)


def quantize(values, bits):
    """Paper eq. (1), per sample: levels, min, max. Rounds half away from zero like Rust's round."""
    if not np.isfinite(values).all():
        raise ValueError("non-finite feature value")
    lo, hi = float(values.min()), float(values.max())
    top = (1 << bits) - 1
    span = hi - lo
    if span > 0:
        scaled = (values.astype(np.float64) - lo) * (top / span)
        levels = np.clip(np.floor(scaled + 0.5), 0, top).astype(np.uint8)
    else:
        levels = np.zeros(values.shape, dtype=np.uint8)
    return levels, np.float32(lo), np.float32(hi)


def dequantize(levels, bits, lo, hi):
    step = (float(hi) - float(lo)) / ((1 << bits) - 1)
    return (float(lo) + levels.astype(np.float64) * step).astype(np.float32)


def tile(levels):
    """C x H x W levels → one (down·H) x (across·W) image, channel c at tile (c mod across, c div across)."""
    c, h, w = levels.shape
    across, down = tile_grid(c)
    padded = np.zeros((across * down, h, w), dtype=np.uint8)
    padded[:c] = levels
    return np.ascontiguousarray(padded.reshape(down, across, h, w).transpose(0, 2, 1, 3).reshape(down * h, across * w))


def untile(image, shape):
    c, h, w = shape
    across, down = tile_grid(c)
    return image.reshape(down, h, across, w).transpose(0, 2, 1, 3).reshape(across * down, h, w)[:c]


def encode_frame(features, quality):
    """Quantize → tile → JPEG → frame (28-byte header as frame.rs: magic, version, codec id 2 =
    full JPEG, quality, bits, C, H, W, min, max, payload length, CRC-32 over header and payload)."""
    c, h, w = features.shape
    levels, lo, hi = quantize(features, QUANT_BITS)
    buffer = io.BytesIO()
    # Pillow's defaults: baseline, standard (not optimised) Huffman tables, like jpeg-encoder here.
    Image.fromarray(tile(levels), mode="L").save(buffer, format="JPEG", quality=quality)
    payload = buffer.getvalue()
    head = b"BN" + struct.pack("<BBBBHHHffI", 1, 2, quality, QUANT_BITS, c, h, w, lo, hi, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def decode_frame(frame):
    head = frame[:24]
    (crc,) = struct.unpack_from("<I", frame, 24)
    payload = frame[28:]
    if zlib.crc32(payload, zlib.crc32(head)) != crc:
        raise ValueError("frame CRC mismatch")
    _, _, _, bits, c, h, w, lo, hi, _ = struct.unpack_from("<BBBBHHHffI", frame, 2)
    with Image.open(io.BytesIO(payload)) as image:
        pixels = np.asarray(image, dtype=np.uint8)
    across, down = tile_grid(c)
    if pixels.shape != (down * h, across * w):
        raise ValueError(f"decoded image {pixels.shape}, expected {(down * h, across * w)}")
    return dequantize(untile(pixels, (c, h, w)), bits, lo, hi)


def codec_roundtrip(features, quality):
    return decode_frame(encode_frame(features, quality))
