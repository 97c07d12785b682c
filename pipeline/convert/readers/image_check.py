"""Is an image file's content intact? Damage that keeps the header and the end marker (bytes flipped in
a JPEG scan, a JPEG cut short with FFD9 appended, flipped PNG data) decodes to garbage without an
error from PIL, so the end marker alone proves nothing.

- PNG: every chunk's CRC is checked (PIL's verify()); a flipped byte anywhere fails its chunk's CRC.
  About a millisecond for a 2 MB file.
- JPEG: a full decode with libjpeg-turbo through torchvision, whose libjpeg reports corrupt data
  ("Corrupt JPEG data: premature end of data segment", "bad Huffman code", "extraneous bytes before
  marker") as warnings on the process's stderr, where PIL silences them. Those warnings are caught
  (stderr is pointed at a temporary file for the few milliseconds of the decode) and count as errors.
  It catches a scan cut short (the decoder runs out of data before the last block) and flipped scan
  bytes that throw the decoder off its codes or its block count; flipped bytes that still decode as
  valid codes of the right length cannot be told from real content by any decoder. Without
  torchvision, a full PIL decode runs instead and catches only what makes libjpeg fail outright
  (truncation without an end marker, broken headers).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import warnings

from PIL import Image

# libjpeg's warnings about the data itself (jerror.h JWRN_*): anything else on stderr is not ours.
_JPEG_DATA_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid SOS parameters",
                       "Warning: unknown JFIF revision", "Inconsistent progression sequence",
                       "Application transform setting")
_stderr_lock = threading.Lock()  # file descriptor 2 is the process's: one decode at a time points it elsewhere
_sink = None  # the temporary file stderr goes to while decoding, one per process


def png_problem(data: bytes) -> str | None:
    """Why a PNG's chunks do not check out (CRC, structure), or None."""
    try:
        Image.open(io.BytesIO(data)).verify()
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for corrupt data
        return f"corrupt PNG: {e}"
    return None


def _torchvision_decoder():
    try:
        import torch
        from torchvision.io import decode_jpeg
    except ImportError:
        return None
    return lambda data: decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))


_decoder: list = []  # [decode function or None], filled on first use (importing torch takes seconds)


def _decode_catching_warnings(decode, data: bytes) -> str:
    """Run decode(data) with stderr captured; returns what libjpeg wrote there, or raises its error."""
    global _sink
    with _stderr_lock:
        if _sink is None:
            _sink = tempfile.TemporaryFile()  # noqa: SIM115 -- kept open for the process's life
        saved = os.dup(2)
        os.dup2(_sink.fileno(), 2)
        try:
            decode(data)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _sink.seek(0)
            written = _sink.read().decode("utf-8", "replace")
            _sink.seek(0)
            _sink.truncate()
    return written


def jpeg_problem(data: bytes) -> str | None:
    """Why a JPEG does not decode cleanly (libjpeg's error or its corrupt-data warnings), or None."""
    if not _decoder:
        _decoder.append(_torchvision_decoder())
    decode = _decoder[0]
    if decode is None:
        return _pil_decode_problem(data)
    try:
        with warnings.catch_warnings():  # torchvision warns on every call that its image API is deprecated
            warnings.simplefilter("ignore")
            written = _decode_catching_warnings(decode, data)
    except RuntimeError as e:
        message = str(e).splitlines()[0]
        if "support" in message.lower():  # a JPEG kind torchvision does not decode: PIL decides
            return _pil_decode_problem(data)
        return f"corrupt JPEG: {message}"
    found = [line.strip() for line in written.splitlines() if line.strip().startswith(_JPEG_DATA_WARNINGS)]
    if found:
        return f"corrupt JPEG: {'; '.join(dict.fromkeys(found))}"
    # Anything else that reached stderr meanwhile belongs to someone else: hand it on.
    if written.strip():
        os.write(2, written.encode())
    return None


def _pil_decode_problem(data: bytes) -> str | None:
    try:
        Image.open(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 -- as above
        return f"corrupt or truncated JPEG: {e}"
    return None
