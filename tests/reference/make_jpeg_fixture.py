#!/usr/bin/python3
"""Writes tests/fixtures/jpeg_pil.bin: the reference for the data layer's JPEG decoding, resize and
ImageNet transforms (tests/data/test_jpeg.cpp), made by PIL and torchvision.

Run with Debian's python3 (PIL, torchvision; the pyenv python on PATH has neither):

    /usr/bin/python3 tests/reference/make_jpeg_fixture.py [--out tests/fixtures]

Format: MDFX (tests/support/fixture.h), every tensor int32 unless said otherwise:
  rgb/jpeg            the bytes of a 56x40 RGB JPEG (quality 90, 4:2:0) of a detailed picture
  rgb/decoded         PIL's decode, (40, 56, 3)
  gray/jpeg, gray/decoded      a 32x24 grayscale JPEG; PIL's decode converted to RGB (24, 32, 3)
  cmyk/jpeg, cmyk/decoded      a 32x24 CMYK JPEG as PIL writes it (Adobe, inverted); decode
                               converted to RGB (24, 32, 3)
  resize/<name>/out   PIL's Image.resize(size, BILINEAR, box) of rgb/decoded, (h, w, 3);
  resize/<name>/size  (width, height); resize/<name>/box (float64: left, top, right, bottom)
  eval/out            float32 (3, 32, 32): Resize(40) -> CenterCrop(32) -> ToTensor ->
                      Normalize(ImageNet) of rgb/decoded
  rrc/out, rrc/out_flipped   float32 (3, 24, 24): F.resized_crop(top 5, left 7, height 30,
                      width 41, size 24) [-> hflip] -> ToTensor -> Normalize(ImageNet)
Deterministic (fixed numpy seed); the whole file stays under 200 KB.
"""

import argparse
import io
import os
import sys

import numpy as np
from PIL import Image
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture as TensorFixture  # noqa: E402  (the MDFX writer)


class Fixture(TensorFixture):
    """The MDFX writer of make_fixtures.py; uint8 pixels are stored as int32."""

    def add(self, name, value):
        value = np.asarray(value)
        super().add(name, value.astype(np.int32) if value.dtype == np.uint8 else value)


def detailed_picture(width, height, rng):
    """Gradients, a sharp disc edge, stripes and noise: exercises the IDCT, chroma and filters."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * x / width
    green = 128 + 100 * np.sin(x / 3.0) * np.cos(y / 5.0)
    blue = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 3) ** 2, 220, 30)
    picture = np.stack([red, green, blue], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return np.clip(np.round(picture), 0, 255).astype(np.uint8)


def jpeg_bytes(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def normalized(image):
    return T.Normalize(MEAN, STD)(T.ToTensor()(image)).numpy().astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures"))
    args = parser.parse_args()
    rng = np.random.default_rng(20240)
    fixture = Fixture()

    rgb_bytes = jpeg_bytes(Image.fromarray(detailed_picture(56, 40, rng), "RGB"), quality=90)
    rgb = Image.open(io.BytesIO(rgb_bytes))
    rgb.load()
    assert rgb.mode == "RGB"
    fixture.add("rgb/jpeg", np.frombuffer(rgb_bytes, dtype=np.uint8))
    fixture.add("rgb/decoded", np.asarray(rgb))

    gray_picture = detailed_picture(32, 24, rng)[:, :, 1]
    gray_bytes = jpeg_bytes(Image.fromarray(gray_picture, "L"), quality=90)
    gray = Image.open(io.BytesIO(gray_bytes))
    assert gray.mode == "L"
    fixture.add("gray/jpeg", np.frombuffer(gray_bytes, dtype=np.uint8))
    fixture.add("gray/decoded", np.asarray(gray.convert("RGB")))

    cmyk_picture = Image.fromarray(detailed_picture(32, 24, rng), "RGB").convert("CMYK")
    cmyk_bytes = jpeg_bytes(cmyk_picture, quality=90)
    cmyk = Image.open(io.BytesIO(cmyk_bytes))
    assert cmyk.mode == "CMYK"
    fixture.add("cmyk/jpeg", np.frombuffer(cmyk_bytes, dtype=np.uint8))
    fixture.add("cmyk/decoded", np.asarray(cmyk.convert("RGB")))

    cases = {  # name: (size, box)
        "down_less_2x": ((36, 30), None),
        "down_more_2x": ((17, 12), None),
        "down_9x": ((6, 5), None),
        "up": ((72, 50), None),
        "mixed": ((42, 15), None),
        "box": ((24, 24), (3.5, 2.25, 50.0, 37.5)),
    }
    for name, (size, box) in cases.items():
        resized = rgb.resize(size, Image.BILINEAR, box=box)
        fixture.add("resize/%s/out" % name, np.asarray(resized))
        fixture.add("resize/%s/size" % name, np.array(size, dtype=np.int32))
        full = (0.0, 0.0, float(rgb.width), float(rgb.height))
        fixture.add("resize/%s/box" % name, np.array(box if box else full, dtype=np.float64))

    eval_image = T.CenterCrop(32)(T.Resize(40)(rgb))
    fixture.add("eval/out", normalized(eval_image))
    crop = F.resized_crop(rgb, 5, 7, 30, 41, [24, 24])
    fixture.add("rrc/out", normalized(crop))
    fixture.add("rrc/out_flipped", normalized(F.hflip(crop)))

    path = os.path.join(args.out, "jpeg_pil.bin")
    size = fixture.write(path)
    print("wrote %s (%d bytes); rgb jpeg %d bytes, gray %d, cmyk %d" %
          (path, size, len(rgb_bytes), len(gray_bytes), len(cmyk_bytes)))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
