"""Shipped and user weights: fp16 state dicts plus integer coding tables.

A weights file is a `torch.save` dict of tensors, numbers and strings, loaded
with `weights_only=True` so loading never executes code. It is stored
gzip-compressed (deflate takes about 11% off fp16 weights, which torch's own zip
container stores uncompressed); plain uncompressed files load as well. Its
SHA-256 identifies the model in every stream it writes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from functools import lru_cache
from pathlib import Path

import torch

from vcodec.errors import UserError
from vcodec.models.inter import InterCodec, InterConfig
from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig

FORMAT = "vcodec-weights-1"
GZIP_MAGIC = b"\x1f\x8b"
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_KEYFRAME = WEIGHTS_DIR / "keyframe.pt"
DEFAULT_INTER = WEIGHTS_DIR / "inter.pt"
ROLES = {"keyframe": (KeyframeCodec, KeyframeConfig), "inter": (InterCodec, InterConfig)}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=1)
def codec_source_digest() -> str:
    """SHA-256 of the package's coding source (everything but `vcodec.training`, which codes no frames).

    Measured RD points depend on it as much as on the weights, so tools that reuse points key them by it.
    """
    package = Path(__file__).parent
    sources = sorted(f for f in package.rglob("*.py") if "training" not in f.relative_to(package).parts)
    return hashlib.sha256(b"".join(f.read_bytes() for f in sources)).hexdigest()


def content_digest(blob: dict) -> str:
    """SHA-256 over a weights blob's config, tensors and tables (everything but the digest itself)."""
    h = hashlib.sha256()

    def feed(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k in sorted(value):
                feed(f"{prefix}/{k}", value[k])
        elif isinstance(value, torch.Tensor):
            h.update(prefix.encode() + str(value.dtype).encode() + str(tuple(value.shape)).encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(prefix.encode() + repr(value).encode())

    feed("", {k: v for k, v in blob.items() if k != "content_sha256"})
    return h.hexdigest()


def role_of(model: KeyframeCodec | InterCodec) -> str:
    return "inter" if isinstance(model, InterCodec) else "keyframe"


def save_weights(path: str | os.PathLike, model: KeyframeCodec | InterCodec, meta: dict | None = None) -> str:
    """Export a model (fp16 weights + coding tables built from them); returns the file's sha256.

    The fp16 weights are what decoders run, so the tables are built from the
    fp16-rounded model: export, reload and code all see the same numbers.
    """
    state = {k: (v.half() if v.dtype.is_floating_point else v) for k, v in model.state_dict().items()}
    fresh = type(model)(model.config)  # a fresh copy: the caller's model (perhaps in use) stays untouched
    fresh.load_state_dict({k: v.float() if v.dtype.is_floating_point else v for k, v in state.items()})
    fresh.update_tables()
    if isinstance(model, InterCodec):  # fitted tables (vcodec.entropy.temporal) are data, not built from weights
        fresh.motion.z_temporal, fresh.residual.z_temporal = model.motion.z_temporal, model.residual.z_temporal
    model = fresh
    blob = {
        "format": FORMAT,
        "role": role_of(model),
        "config": json.dumps(model.config.to_dict()),
        "state_dict": state,
        "tables": model.tables_state(),
        "meta": json.dumps(meta or {}),
    }
    blob["content_sha256"] = content_digest(blob)
    write_weights_file(path, blob)
    return sha256_file(path)


def write_weights_file(path: str | os.PathLike, blob: dict) -> None:
    """`torch.save` the dict gzip-compressed, atomically (written beside, then renamed)."""
    raw = io.BytesIO()
    torch.save(blob, raw)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # mtime=0 and no file name: the same weights always give the same bytes (and sha256).
    tmp.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9, mtime=0))
    os.replace(tmp, path)


def read_weights_file(path: str | os.PathLike) -> object:
    """The saved dict, from a gzip-compressed or a plain `torch.save` file."""
    data = Path(path).read_bytes()
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class LoadedModel:
    """A model ready to code, with the identity of the file it came from."""

    def __init__(self, model, sha256: str, meta: dict, path: Path):
        self.model, self.sha256, self.meta, self.path = model, sha256, meta, path


def load_keyframe(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    path = Path(path) if path is not None else DEFAULT_KEYFRAME
    return _load_cached(str(path.resolve()), str(device), "keyframe")


def load_inter(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    path = Path(path) if path is not None else DEFAULT_INTER
    return _load_cached(str(path.resolve()), str(device), "inter")


def inter_available(path: str | os.PathLike | None = None) -> bool:
    return Path(path).is_file() if path is not None else DEFAULT_INTER.is_file()


@lru_cache(maxsize=8)
def _load_cached(path: str, device: str, role: str) -> LoadedModel:
    if not Path(path).is_file():
        raise UserError(f"{role} weights file not found: {path}")
    try:
        blob = read_weights_file(path)
    except Exception as exc:  # torch raises many types for foreign/tampered files
        raise UserError(f"cannot load weights {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or blob.get("role") != role:
        raise UserError(f"{path} is not a vcodec {role} weights file")
    if blob.get("content_sha256") != content_digest(blob):
        raise UserError(f"weights file {path} fails its integrity check (damaged or modified)")
    cls, config_cls = ROLES[role]
    cfg = json.loads(blob["config"])
    cfg["lambdas"] = tuple(cfg["lambdas"])
    model = cls(config_cls(**cfg))
    model.load_state_dict({k: v.float() if v.dtype.is_floating_point else v for k, v in blob["state_dict"].items()})
    model.load_tables(blob["tables"])
    model.eval().to(device)
    return LoadedModel(model, sha256_file(path), json.loads(blob["meta"]), Path(path))
