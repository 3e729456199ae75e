#!/usr/bin/env python3
"""Make the embedded Fashion-MNIST subset in data/fashion-mnist-subset/.

Takes the first TRAIN_COUNT training and TEST_COUNT test images (and their labels) from the
full Fashion-MNIST set installed by Debian's `dataset-fashion-mnist` package and writes them in
the same IDX format, gzip-compressed. The output is byte-for-byte reproducible: gzip level 9,
mtime 0, no file name in the gzip header.

Usage: python3 data/make_subset.py [SOURCE_DIR] [OUT_DIR]
Defaults: /usr/share/datasets/fashion-mnist  data/fashion-mnist-subset
"""

import gzip
import io
import pathlib
import struct
import sys

TRAIN_COUNT = 10_000
TEST_COUNT = 2_000

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension (count)


def read_idx(path: pathlib.Path, magic: int):
    data = gzip.decompress(path.read_bytes())
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        sys.exit(f"{path}: magic {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    item = 1
    for d in dims[1:]:
        item *= d
    if len(body) != dims[0] * item:
        sys.exit(f"{path}: body is {len(body)} bytes, dimensions {dims} need {dims[0] * item}")
    return dims, item, body


def write_idx(path: pathlib.Path, magic: int, dims, body: bytes):
    raw = struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims) + body
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(raw)
    path.write_bytes(buf.getvalue())
    print(f"{path}: {dims[0]} items, {len(buf.getvalue())} bytes")


def subset(src: pathlib.Path, out: pathlib.Path, split: str, count: int):
    dims, item, body = read_idx(src / f"{split}-images-idx3-ubyte.gz", IMAGES_MAGIC)
    ldims, _, labels = read_idx(src / f"{split}-labels-idx1-ubyte.gz", LABELS_MAGIC)
    if dims[0] != ldims[0] or dims[0] < count:
        sys.exit(f"{src}: {dims[0]} images, {ldims[0]} labels; need {count} of each")
    write_idx(out / f"{split}-images-idx3-ubyte.gz", IMAGES_MAGIC, (count, *dims[1:]), body[: count * item])
    write_idx(out / f"{split}-labels-idx1-ubyte.gz", LABELS_MAGIC, (count,), labels[:count])


def main():
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
    out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "data/fashion-mnist-subset")
    out.mkdir(parents=True, exist_ok=True)
    subset(src, out, "train", TRAIN_COUNT)
    subset(src, out, "t10k", TEST_COUNT)


if __name__ == "__main__":
    main()
