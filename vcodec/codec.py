"""Frame-level encoder and decoder: frames <-> packets, closed loop.

The encoder's reconstruction is produced by exactly the decoder's code path on
exactly the decoded latents, so a decoder on the same machine reproduces it bit
for bit (checked with the per-frame hash stored in each packet).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import torch

from vcodec.color import YUVFrame, chroma_size, frame_to_tensor, tensor_to_frame
from vcodec.entropy.coder import EntropyDecodeError
from vcodec.errors import StreamError
from vcodec.models.keyframe import KeyframeCodec
from vcodec.ratecontrol import RateController
from vcodec.stream import FRAME_I, INDEX_ENTRY_BYTES, Packet, frame_hash, stream_quality

_LEN = struct.Struct("<I")


def pack_intra(z_bytes: bytes, y_bytes: bytes) -> bytes:
    return _LEN.pack(len(z_bytes)) + z_bytes + y_bytes


def unpack_intra(payload: bytes, frame_index: int) -> tuple[bytes, bytes]:
    if len(payload) < _LEN.size:
        raise StreamError(f"frame {frame_index}: keyframe payload shorter than its length field")
    (z_len,) = _LEN.unpack_from(payload)
    if _LEN.size + z_len > len(payload):
        raise StreamError(f"frame {frame_index}: hyper-latent length {z_len} exceeds the payload")
    return payload[_LEN.size : _LEN.size + z_len], payload[_LEN.size + z_len :]


@dataclass
class Coded:
    packet: Packet
    recon: YUVFrame


class FrameEncoder:
    """Turns frames into packets; every frame is a keyframe in this version.

    With a RateController, each frame's quality is chosen to meet the bitrate;
    otherwise every frame uses the fixed `quality`.
    """

    def __init__(self, keyframe: KeyframeCodec, quality: float, device: torch.device,
                 rate: RateController | None = None):
        self.keyframe, self.device, self.rate = keyframe, device, rate
        self.quality = stream_quality(quality)

    def encode(self, frame: YUVFrame, index: int) -> Coded:
        x = frame_to_tensor(frame).to(self.device)
        y0 = self.keyframe.analysis(x)
        quality, estimate = self.quality, 0.0
        if self.rate is not None:
            quality = stream_quality(self.rate.choose(lambda q: self.keyframe.estimate_bits(y0, q)))
            estimate = self.keyframe.estimate_bits(y0, quality)
        latents = self.keyframe.compress(x, quality, y0)
        x_hat = self.keyframe.synthesize(latents.y_hat, quality, x.shape[-2], x.shape[-1])
        recon = tensor_to_frame(x_hat, frame.width, frame.height)
        packet = Packet(FRAME_I, index, quality, pack_intra(latents.z_bytes, latents.y_bytes),
                        frame_hash(recon.tobytes()))
        if self.rate is not None:
            self.rate.update(estimate, 8 * (packet.size + INDEX_ENTRY_BYTES))
        return Coded(packet, recon)


class FrameDecoder:
    """Turns packets back into frames of the stream's size."""

    def __init__(self, keyframe: KeyframeCodec, width: int, height: int, device: torch.device):
        self.keyframe, self.width, self.height, self.device = keyframe, width, height, device
        self.half_w, self.half_h = chroma_size(width, height)

    def decode(self, packet: Packet) -> YUVFrame:
        if packet.frame_type != FRAME_I:
            raise StreamError(f"frame {packet.frame_index}: P-frames need a newer decoder")
        z_bytes, y_bytes = unpack_intra(packet.payload, packet.frame_index)
        try:
            y_hat = self.keyframe.decompress_latents(z_bytes, y_bytes, self.half_h, self.half_w)
        except EntropyDecodeError as exc:
            raise StreamError(f"frame {packet.frame_index}: entropy decoding failed: {exc}") from None
        y_hat = y_hat.to(self.device)
        x_hat = self.keyframe.synthesize(y_hat, packet.quality, self.half_h, self.half_w)
        return tensor_to_frame(x_hat, self.width, self.height)
