"""Reading one image file: decode, fix orientation and colour mode, resize.

Pillow does the decoding, so every format it reads works the same way in
training, evaluation and prediction: JPEG (with EXIF orientation), PNG
(including 16-bit and palette images), BMP, GIF (first frame) and WebP.
Whatever the file holds becomes 8-bit RGB; transparent pixels are composited
onto white.
"""

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# What Pillow raises for a file that is not a decodable image (truncated, garbage, a decompression bomb).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

def is_image_file(path):
    """Whether a path has an image extension (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def check_image(path):
    """Fully decodes an image file; returns `None` if it is good, else why not."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            image.load()
            if image.width == 0 or image.height == 0:
                return "image has no pixels"
    except DECODE_ERRORS as error:
        return f"not a decodable image ({type(error).__name__}: {error})"
    return None


def read_image(path, size, resize="stretch"):
    """Reads an image file as RGB uint8 of the given size.

    Args:
        path: str or path. An image file.
        size: tuple `(height, width)`.
        resize: str. One of `RESIZE_POLICIES`. Defaults to `"stretch"`.

    Returns:
        A `numpy` array of shape `(height, width, 3)`, dtype uint8.
    """
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        rgb = to_rgb(image)
    return resize_image(rgb, size, resize)


def to_rgb(image):
    """Converts a Pillow image of any mode to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
        pixels = np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def resize_image(image, size, resize="stretch"):
    """Resizes an RGB Pillow image to `(height, width)` by a resize policy."""
    height, width = size
    if resize == "crop":
        image = ImageOps.fit(image, (width, height), Image.BILINEAR)
    elif resize == "pad":
        image = ImageOps.pad(image, (width, height), Image.BILINEAR, color=(0, 0, 0))
    elif image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
