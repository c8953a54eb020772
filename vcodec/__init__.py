"""vcodec: a learned video codec (hyperprior keyframes, GOP-structured .lvc streams).

Python API, mirroring the command line:

    import vcodec
    vcodec.encode("clip.mp4", "clip.lvc", quality=4)
    vcodec.decode("clip.lvc", "back.mkv")
    print(vcodec.info("clip.lvc").bpp)
"""

__version__ = "0.1.0"

from vcodec.api import decode, encode, info  # noqa: E402
from vcodec.errors import StreamError, UserError  # noqa: E402

__all__ = ["encode", "decode", "info", "UserError", "StreamError", "__version__"]
