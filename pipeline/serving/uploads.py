"""A request's pictures, and what is wrong with a bad one, as the status code and one line the service answers with.

    422  not a picture, a truncated one, an empty body, malformed multipart, no files, a picture with no item
    413  a body over serve.max_upload_bytes, more than serve.max_files pictures, a picture over serve.max_pixels
         (or a decompression bomb)
    415  a content type that is neither multipart/form-data nor a picture's, or an array file (.npy/.npz, a zip)

Pictures are read as fashion-predict reads them (pipeline/pictures/convert.py): the same cropping and conversion,
so the service and the command give the same answer for the same file. The size limit is checked from a picture's
header before any pixel is decoded, with no process-global state (pipeline/pictures/files.py), so concurrent
requests cannot disturb each other's checks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.pictures.convert import WORKING_SIDE, picture_to_image, shrunk
from pipeline.pictures.files import PictureTooLarge, read_picture_pixels

MULTIPART = "multipart/form-data"
RAW_PICTURE_TYPES = ("image/", "application/octet-stream")
FILES_FIELD = "files"
THUMBNAIL_SIDE = 128  # what a labeller sees of a captured picture; the original upload is never kept
# An array file is a batch for fashion-predict, not a picture: say so rather than "unreadable image".
ARRAY_SIGNATURES = (b"\x93NUMPY", b"PK\x03\x04")


class Refused(Exception):
    """A request the service answers with `status` and a one-line `message` instead of predictions."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, " ".join(message.split())


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class Decoded:
    name: str
    image: np.ndarray  # uint8 (28, 28, 1), the model's input
    thumbnail: np.ndarray  # uint8 (H, W), at most THUMBNAIL_SIDE a side: the whole picture in grey, for labellers


async def read_body(request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"upload of {int(declared):,} bytes is over the limit of {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"upload is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def uploads_of(request, limit: int, max_files: int) -> list[Upload]:
    """The pictures of a request: the `files` parts of a multipart form, or a single picture as the raw body."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != MULTIPART and not content_type.startswith(RAW_PICTURE_TYPES):
        shown = content_type or "none"
        raise Refused(415, f"content type {shown} not accepted: send multipart/form-data ('files') or a picture")
    body = await read_body(request, limit)
    if not body:
        raise Refused(422, "empty body: no picture sent")
    if content_type != MULTIPART:
        return [checked_upload(Upload(request.headers.get("x-file-name", "upload"), body))]

    async def once():
        yield body

    try:
        form = await MultiPartParser(request.headers, once(), max_files=max_files, max_fields=max_files).parse()
    except MultiPartException as error:
        if error.message.startswith("Too many files"):
            raise Refused(413, f"more than serve.max_files ({max_files}) pictures in one request") from None
        raise Refused(422, f"malformed multipart body ({error.message})") from None
    try:
        parts = form.getlist(FILES_FIELD)
        if not parts:
            raise Refused(422, f"no '{FILES_FIELD}' in the form: send each picture as a '{FILES_FIELD}' part")
        uploads = []
        for index, part in enumerate(parts):
            if isinstance(part, str):
                raise Refused(422, f"'{FILES_FIELD}' part {index + 1} is text, not a file")
            uploads.append(checked_upload(Upload(part.filename or f"file {index + 1}", await part.read())))
        return uploads
    finally:
        await form.close()


def checked_upload(upload: Upload) -> Upload:
    if not upload.data:
        raise Refused(422, f"{upload.name}: empty file")
    if upload.data.startswith(ARRAY_SIGNATURES):
        raise Refused(415, f"{upload.name}: an array file or archive, not a picture (arrays go to fashion-predict)")
    return upload


def header_pixels(data: bytes) -> int:
    """How many pixels a picture's header says it has, read without decoding it; 0 when it has no readable header
    (its decoding fails at once)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.width * opened.height
    except Exception:  # any unreadable header: decode() says what is wrong with it
        return 0


def decode(upload: Upload, invert: str, crop: bool, max_pixels: int) -> Decoded:
    """The model's input and the labellers' thumbnail of one upload; Refused naming it when it cannot be."""
    try:
        grey = shrunk(read_picture_pixels(upload.name, invert, data=upload.data, max_pixels=max_pixels), WORKING_SIDE)
        image = picture_to_image(grey, invert, crop)
    except PictureTooLarge as error:
        raise Refused(413, str(error)) from None
    except PipelineError as error:
        raise Refused(422, str(error)) from None
    except Exception as error:  # a crafted file can make Pillow raise anything (struct.error, IndexError, ...)
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise Refused(422, f"{upload.name}: unreadable image ({reason})") from None
    if image is None:
        raise Refused(422, f"{upload.name}: no item to classify (nothing stands out from the background)")
    thumbnail = np.clip(np.rint(shrunk(grey, THUMBNAIL_SIDE)), 0, 255).astype(np.uint8)
    return Decoded(upload.name, image, thumbnail)
