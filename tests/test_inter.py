"""P-frames: closed loop, GOP structure, seeking, warping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vcodec
from tests.conftest import crop, write_clip
from vcodec.models.flow import warp, warp_yuv420
from vcodec.models.inter import InterCodec, InterConfig
from vcodec.video import read_frames
from vcodec.zoo import save_weights

TINY = InterConfig(motion_n=16, motion_m=16, residual_n=16, residual_m=16, refine_width=16, flow_width=16)


@pytest.fixture(scope="module")
def inter_weights(tmp_path_factory):
    """A small inter model with fixed random weights: enough to test the coding machinery exactly."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inter") / "inter.pt"
    save_weights(path, InterCodec(TINY).eval(), {"note": "test model"})
    return path


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory, sample_frames):
    path = tmp_path_factory.mktemp("gop") / "gop.mkv"
    return write_clip(path, [crop(f, 96, 64) for f in sample_frames[:6]])


def test_p_frames_roundtrip_bit_exact(tmp_path, gop_clip, inter_weights):
    stream = tmp_path / "p.lvc"
    vcodec.encode(gop_clip, stream, quality=3, intra_period=3, inter_weights=inter_weights, progress=False,
                  scene_cuts=False)
    s = vcodec.info(stream)
    assert [p["type"] for p in s.packets] == ["I", "P", "P", "I", "P", "P"]
    assert [g["first_frame"] for g in s.gops] == [0, 3]
    out = tmp_path / "p.y4m"
    vcodec.decode(stream, out, device="cpu", verify=True, inter_weights=inter_weights, progress=False)
    assert len(read_frames(out)[0]) == 6


@pytest.mark.parametrize("slices", [1, 3])
def test_p_frames_with_context_models_roundtrip_bit_exact(tmp_path, gop_clip, slices):
    """Checkerboard context models in the motion and residual codecs, and optionally a channel context in the
    residual codec (made non-trivial, as after training): the decoder parses every coding group of each
    latent and reproduces the encoder's frames."""
    torch.manual_seed(1)
    model = InterCodec(InterConfig(**{**TINY.__dict__, "context": True, "residual_slices": slices})).eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for sub in (model.motion, model.residual):
            sub.context.net[-1].weight.normal_(0, 0.05, generator=generator)
        for net in model.residual.channel_context.nets if slices > 1 else []:
            net[-1].weight.normal_(0, 0.05, generator=generator)
    weights = tmp_path / "inter_context.pt"
    save_weights(weights, model, {"note": "test model"})
    stream = tmp_path / "ctx.lvc"
    vcodec.encode(gop_clip, stream, quality=3, intra_period=0, inter_weights=weights, progress=False,
                  scene_cuts=False, frames=4)
    assert [p["type"] for p in vcodec.info(stream).packets] == ["I", "P", "P", "P"]
    vcodec.decode(stream, tmp_path / "ctx.y4m", device="cpu", verify=True, inter_weights=weights, progress=False)


def test_p_frames_with_a_finer_motion_latent_roundtrip_bit_exact(tmp_path, gop_clip):
    """`motion_stages = 2` puts the motion latent at 1/8 of the luma resolution (4x the positions): the motion
    codec's weight shapes are unchanged, and its hyper-latent shape follows, so the decoder parses it."""
    torch.manual_seed(2)
    model = InterCodec(InterConfig(**{**TINY.__dict__, "motion_stages": 2})).eval()
    x = torch.zeros(1, 2, 64, 96)
    assert model.motion.g_a(x).shape[-2:] == (16, 24) and model.motion._z_shape(64, 96)[-2:] == (4, 6)
    weights = tmp_path / "inter_fine_motion.pt"
    save_weights(weights, model, {"note": "test model"})
    stream = tmp_path / "fine.lvc"
    vcodec.encode(gop_clip, stream, quality=3, intra_period=0, inter_weights=weights, progress=False,
                  scene_cuts=False, frames=3)
    vcodec.decode(stream, tmp_path / "fine.y4m", device="cpu", verify=True, inter_weights=weights, progress=False)


def test_seek_into_a_gop_matches_full_decode(tmp_path, gop_clip, inter_weights):
    stream = tmp_path / "p.lvc"
    vcodec.encode(gop_clip, stream, quality=2, intra_period=0, inter_weights=inter_weights, progress=False,
                  scene_cuts=False)
    full, part = tmp_path / "full.y4m", tmp_path / "part.y4m"
    vcodec.decode(stream, full, device="cpu", inter_weights=inter_weights, progress=False)
    vcodec.decode(stream, part, device="cpu", start=4, frames=2, inter_weights=inter_weights, progress=False)
    a, b = read_frames(full)[0][4:], read_frames(part)[0]
    assert len(b) == 2 and all(np.array_equal(x.y, y.y) for x, y in zip(a, b))


def test_p_frames_need_inter_weights(tmp_path, gop_clip, inter_weights):
    for period in (4, None):  # explicit or default intra period: a named file that is missing is an error
        with pytest.raises(vcodec.UserError, match="inter weights"):
            vcodec.encode(gop_clip, tmp_path / "x.lvc", intra_period=period, inter_weights=tmp_path / "missing.pt",
                          progress=False)
    stream = tmp_path / "p.lvc"
    vcodec.encode(gop_clip, stream, intra_period=0, inter_weights=inter_weights, progress=False, frames=2,
                  scene_cuts=False)
    with pytest.raises(vcodec.StreamError, match="inter weights"):
        vcodec.decode(stream, tmp_path / "x.y4m", device="cpu", inter_weights=tmp_path / "missing.pt",
                      progress=False)


def test_scene_cuts_code_keyframes_where_they_cost_less(tmp_path, gop_clip, inter_weights):
    """The test model's random P-frames cost more than keyframes: the encoder must notice and switch,
    and the chosen keyframes become seek points."""
    from vcodec.codec import FrameEncoder
    from vcodec.color import frame_to_tensor
    from vcodec.stream import FRAME_TYPES
    from vcodec.zoo import load_inter, load_keyframe

    stream = tmp_path / "cuts.lvc"
    vcodec.encode(gop_clip, stream, quality=3, intra_period=0, inter_weights=inter_weights, progress=False)
    s = vcodec.info(stream)
    assert [p["type"] for p in s.packets].count("I") > 1
    assert [g["first_frame"] for g in s.gops] == [i for i, p in enumerate(s.packets) if p["type"] == "I"]
    out = tmp_path / "cuts.y4m"
    vcodec.decode(stream, out, device="cpu", verify=True, inter_weights=inter_weights, progress=False)

    # The decision itself: the kept packet has the lower bits + lambda * distortion.
    frames = read_frames(gop_clip)[0][:2]
    keyframe, inter = load_keyframe().model, load_inter(inter_weights).model
    enc = FrameEncoder(keyframe, 3.0, torch.device("cpu"), inter=inter, intra_period=0)
    enc.encode(frames[0], 0)
    x = frame_to_tensor(frames[1])
    p_packet, p_hat, _ = enc._encode_inter(x, 1)
    i_packet, i_hat = enc._encode_intra(x, 1)
    chosen = enc.encode(frames[1], 1).packet
    cheaper = min((enc._rd_cost(p_packet, p_hat, x), "P"), (enc._rd_cost(i_packet, i_hat, x, 3.0), "I"))[1]
    assert FRAME_TYPES[chosen.frame_type] == cheaper


def test_keyframe_offset_codes_gop_keyframes_above_the_p_frames(tmp_path, gop_clip, inter_weights):
    """With a keyframe offset the GOP's keyframes carry the higher quality, the P-frames the stream's, the
    decoder reproduces the encoder (it reads each packet's quality); all-intra streams ignore the offset."""
    stream = tmp_path / "k.lvc"
    vcodec.encode(gop_clip, stream, quality=2.5, intra_period=3, inter_weights=inter_weights, progress=False,
                  scene_cuts=False, keyframe_offset=1.0)
    packets = vcodec.info(stream).packets
    assert [(p["type"], p["quality"]) for p in packets] == [("I", 3.5), ("P", 2.5), ("P", 2.5)] * 2
    vcodec.decode(stream, tmp_path / "k.y4m", device="cpu", verify=True, inter_weights=inter_weights, progress=False)
    top = tmp_path / "top.lvc"
    vcodec.encode(gop_clip, top, quality=6.5, intra_period=3, inter_weights=inter_weights, progress=False,
                  scene_cuts=False, keyframe_offset=1.0, frames=1)
    assert vcodec.info(top).packets[0]["quality"] == 7.0  # clamped to the top of the range
    intra = tmp_path / "i.lvc"
    vcodec.encode(gop_clip, intra, quality=2.5, intra_period=1, progress=False, keyframe_offset=1.0, frames=2)
    assert {p["quality"] for p in vcodec.info(intra).packets} == {2.5}


def test_p_offsets_cycle_the_p_frames_quality_from_each_keyframe(tmp_path, gop_clip, inter_weights):
    """The k-th P-frame after a keyframe is coded at quality + p_offsets[(k-1) % n], clamped to the range; the
    decoder reads each packet's quality; an offset out of range is a user error."""
    stream = tmp_path / "c.lvc"
    vcodec.encode(gop_clip, stream, quality=0.5, intra_period=4, inter_weights=inter_weights, progress=False,
                  scene_cuts=False, keyframe_offset=0.0, p_offsets=(-1.0, 0.25))
    packets = vcodec.info(stream).packets
    assert [(p["type"], p["quality"]) for p in packets] == [("I", 0.5), ("P", 0.0), ("P", 0.75), ("P", 0.0),
                                                            ("I", 0.5), ("P", 0.0)]
    vcodec.decode(stream, tmp_path / "c.y4m", device="cpu", verify=True, inter_weights=inter_weights, progress=False)
    with pytest.raises(vcodec.UserError, match="p-offsets"):
        vcodec.encode(gop_clip, tmp_path / "x.lvc", inter_weights=inter_weights, progress=False, p_offsets=(8.0,))


def test_intra_period_counts_from_the_last_keyframe():
    from vcodec.codec import FrameEncoder
    from vcodec.zoo import load_keyframe

    enc = FrameEncoder(load_keyframe().model, 3.0, torch.device("cpu"), inter=InterCodec(TINY), intra_period=4)
    enc.reference = torch.zeros(1)
    enc._last_key = 5  # a scene cut at frame 5
    assert [enc.keyframe_due(i) for i in range(6, 11)] == [False, False, False, True, True]


def test_warp_predicts_a_known_shift():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 6, 80, 80, generator=g), 3, 1, 1)
    shifted = torch.roll(img, shifts=(2, -3), dims=(-2, -1))  # content moves down 2, left 3
    flow = torch.zeros(1, 2, 80, 80)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # out(p) = ref(p + flow): look right 3, up 2
    pred = warp(img, flow)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert torch.allclose(pred[inner], shifted[inner], atol=1e-5)


def test_luma_warp_moves_luma_by_one_full_resolution_pixel():
    """A one-pixel luma shift is half a pixel on the 4:2:0 grid: `warp` interpolates between luma pixels two
    apart there, while `warp_yuv420` moves the luma plane exactly."""
    g = torch.Generator().manual_seed(0)
    luma = torch.rand(1, 1, 80, 80, generator=g)
    chroma = torch.rand(1, 2, 40, 40, generator=g)
    ref = torch.cat([torch.nn.functional.pixel_unshuffle(luma, 2), chroma], dim=1)
    flow = torch.zeros(1, 2, 40, 40)
    flow[:, 0] = 0.5  # half a 4:2:0 pixel to the right: one luma pixel
    want = torch.nn.functional.pixel_unshuffle(torch.roll(luma, shifts=-1, dims=-1), 2)
    inner = (slice(None), slice(None, 4), slice(2, -2), slice(2, -2))
    assert torch.allclose(warp_yuv420(ref, flow)[inner], want[inner], atol=1e-5)
    assert (warp(ref, flow)[inner] - want[inner]).abs().mean() > 0.1
    assert torch.allclose(warp_yuv420(ref, flow)[:, 4:], warp(ref, flow)[:, 4:])


def test_p_frames_with_luma_warp_roundtrip_bit_exact(tmp_path, gop_clip):
    torch.manual_seed(2)
    weights = tmp_path / "inter_luma.pt"
    save_weights(weights, InterCodec(InterConfig(**{**TINY.__dict__, "luma_warp": True})).eval(), {"note": "test"})
    stream = tmp_path / "luma.lvc"
    vcodec.encode(gop_clip, stream, quality=3, intra_period=0, inter_weights=weights, progress=False,
                  scene_cuts=False, frames=3)
    vcodec.decode(stream, tmp_path / "luma.y4m", device="cpu", verify=True, inter_weights=weights, progress=False)


def test_flow_network_recovers_a_known_shift(sample_frames):
    """Block matching inside the flow network finds motion by construction, before any training."""
    from vcodec.color import frame_to_tensor
    from vcodec.models.flow import FlowNet

    img = frame_to_tensor(sample_frames[0])[..., :128, :160]
    cur = torch.roll(img, shifts=(2, -5), dims=(-2, -1))  # content moves down 2, left 5
    torch.manual_seed(0)
    with torch.no_grad():
        flow = FlowNet(6, levels=3, width=16)(cur, img)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert abs(float(flow[:, 0][inner[1:]].median()) - 5.0) < 0.35
    assert abs(float(flow[:, 1][inner[1:]].median()) + 2.0) < 0.35
    assert (warp(img, flow) - cur)[inner].abs().mean() < 0.4 * (img - cur)[inner].abs().mean()


def test_inter_entropy_parameters_are_exact(inter_weights):
    from vcodec.entropy.exact import ExactHyperSynthesis
    from vcodec.zoo import load_inter

    model = load_inter(inter_weights).model
    z = torch.randint(-3, 4, (1, 16, 2, 3)).double()
    threads = torch.get_num_threads()
    for sub in (model.motion, model.residual):
        exact = ExactHyperSynthesis(sub.h_s)
        reference = exact(z)
        assert torch.equal(exact(z * (1 + 1e-5 * torch.randn(z.shape))), reference)
        assert torch.equal(exact(z.float()), reference)
        try:
            torch.set_num_threads(1)
            assert torch.equal(exact(z), reference)
        finally:
            torch.set_num_threads(threads)


def test_p_frame_symbols_identical_with_one_and_two_threads(tmp_path, gop_clip, inter_weights):
    from vcodec.codec import unpack_payload
    from vcodec.stream import FRAME_P, StreamReader
    from vcodec.zoo import load_inter

    stream = tmp_path / "p.lvc"
    vcodec.encode(gop_clip, stream, quality=3, intra_period=0, inter_weights=inter_weights, progress=False, frames=3,
                  scene_cuts=False)
    model = load_inter(inter_weights).model
    threads = torch.get_num_threads()
    with StreamReader(stream) as r:
        packets = [p for p in r.packets() if p.frame_type == FRAME_P]
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append([model.parse(unpack_payload(p)[1][0], 32, 48) for p in packets])
    finally:
        torch.set_num_threads(threads)
    for (m1, r1), (m2, r2) in zip(*results):
        assert torch.equal(m1, m2) and torch.equal(r1, r2)


def test_global_motion_is_the_median_in_eighth_pixels():
    from vcodec.models.inter import global_motion, motion_field

    flow = torch.empty(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = 6.3, -2.1  # background
    flow[:, :, :6, :6] = 0.0  # a foreground object moving otherwise does not pull the estimate
    units = global_motion(flow)
    assert units.tolist() == [[50, -17]]  # 6.3 * 8 = 50.4, -2.1 * 8 = -16.8
    assert motion_field(units).flatten().tolist() == [6.25, -2.125]


def test_p_packet_carries_the_global_motion_of_a_pan(sample_frames, inter_weights):
    from vcodec.codec import FrameDecoder, FrameEncoder, MotionSearch, unpack_payload
    from vcodec.color import frame_to_tensor, tensor_to_frame
    from vcodec.zoo import load_inter, load_keyframe

    img = frame_to_tensor(crop(sample_frames[0], 256, 192))
    frames = [tensor_to_frame(t, 256, 192) for t in (img, torch.roll(img, shifts=(2, -5), dims=(-2, -1)))]
    keyframe, inter = load_keyframe().model, load_inter(inter_weights).model
    enc = FrameEncoder(keyframe, 3.0, torch.device("cpu"), inter=inter, intra_period=0, scene_cuts=False,
                       motion=MotionSearch(blocks=()))  # the motion codec's path, which sends global motion
    coded = [enc.encode(f, i) for i, f in enumerate(frames)]
    side, _ = unpack_payload(coded[1].packet)
    dx, dy = side.global_motion
    assert abs(dx - 5 * 8) <= 3 and abs(dy + 2 * 8) <= 3  # content moved left 5, down 2 (half-res pixels)
    dec = FrameDecoder(keyframe, 256, 192, torch.device("cpu"), inter)
    for c in coded:
        assert dec.decode(c.packet).tobytes() == c.recon.tobytes()


def test_format_3_packets_still_decode(sample_frames, inter_weights):
    """Format 3.x gave each latent's z and y their own length-prefixed substream; 4.x codes a frame's groups in
    one ANS stream; 6.x adds the motion quality. The same latents in each layout decode to the same frames,
    and the one stream is smaller."""
    from vcodec.codec import FrameDecoder, pack_p_payload, pack_substreams
    from vcodec.color import frame_to_tensor
    from vcodec.stream import FRAME_I, FRAME_P, Packet
    from vcodec.zoo import load_inter, load_keyframe

    keyframe, inter = load_keyframe().model, load_inter(inter_weights).model
    x0, x1 = (frame_to_tensor(crop(f, 96, 64)) for f in sample_frames[:2])
    key = keyframe.compress(x0, 3.0)
    ref = keyframe.synthesize(key.y_hat, 3.0, *x0.shape[-2:]).clamp(0, 1)
    p = inter.compress(x1, (ref * 255).round() / 255, 3.0)
    split = [*p.motion.split_substreams(), *p.residual.split_substreams()]
    packets = {
        (6, 0): [Packet(FRAME_I, 0, 3.0, key.substream()),
                 Packet(FRAME_P, 1, 3.0, pack_p_payload(p.global_motion, 3.0, p.substream(), (6, 0)))],
        (4, 0): [Packet(FRAME_I, 0, 3.0, key.substream()),
                 Packet(FRAME_P, 1, 3.0, pack_p_payload(p.global_motion, 3.0, p.substream(), (4, 0)))],
        (3, 0): [Packet(FRAME_I, 0, 3.0, pack_substreams(list(key.split_substreams()))),
                 Packet(FRAME_P, 1, 3.0, pack_p_payload(p.global_motion, 3.0, pack_substreams(split), (3, 0)))],
    }
    frames = {}
    for version, pair in packets.items():
        dec = FrameDecoder(keyframe, 96, 64, torch.device("cpu"), inter, version)
        frames[version] = [dec.decode(packet).tobytes() for packet in pair]
    assert frames[(6, 0)] == frames[(4, 0)] == frames[(3, 0)]  # before 6.0 the motion quality is the frame's
    assert packets[(6, 0)][1].size == packets[(4, 0)][1].size + 2
    assert all(a.size < b.size for a, b in zip(packets[(4, 0)], packets[(3, 0)]))


def test_motion_quality_search_keeps_the_cheapest_and_decodes_bit_exactly(sample_frames, inter_weights):
    """With several motion-quality offsets the encoder keeps the P-frame with the lowest RD cost; the chosen
    motion quality travels in the payload (format 6) and the decoder reproduces the encoder's frames."""
    from vcodec.codec import FrameDecoder, FrameEncoder, MotionSearch, unpack_payload
    from vcodec.color import frame_to_tensor
    from vcodec.zoo import load_inter, load_keyframe

    keyframe, inter = load_keyframe().model, load_inter(inter_weights).model
    frames = [crop(f, 96, 64) for f in sample_frames[:4]]
    offsets = (0.0, -1.0, -2.0)
    searched = FrameEncoder(keyframe, 3.0, torch.device("cpu"), inter=inter, intra_period=0, scene_cuts=False,
                            motion=MotionSearch(motion_offsets=offsets, blocks=()))
    coded = [searched.encode(f, i) for i, f in enumerate(frames)]
    chosen = [unpack_payload(c.packet)[0].motion_quality for c in coded[1:]]
    assert set(chosen) <= {3.0, 2.0, 1.0}
    dec = FrameDecoder(keyframe, 96, 64, torch.device("cpu"), inter)
    assert [dec.decode(c.packet).tobytes() for c in coded] == [c.recon.tobytes() for c in coded]
    # Each single offset on its own: the search's first P-frame is the cheapest of them.
    costs = []
    for d in offsets:
        single = FrameEncoder(keyframe, 3.0, torch.device("cpu"), inter=inter, intra_period=0, scene_cuts=False,
                              motion=MotionSearch(motion_offsets=(d,), blocks=()))
        one = [single.encode(f, i) for i, f in enumerate(frames[:2])][1]
        assert unpack_payload(one.packet)[0].motion_quality == 3.0 + d
        costs.append(single._rd_cost(one.packet, frame_to_tensor(one.recon), frame_to_tensor(frames[1])))
    best = offsets[min(range(len(offsets)), key=costs.__getitem__)]
    assert chosen[0] == 3.0 + best


def test_block_vectors_code_exactly_and_damage_is_a_stream_error():
    from vcodec.models.blocks import block_field, decode_vectors, encode_vectors

    torch.manual_seed(1)
    vectors = torch.randint(-300, 300, (2, 5, 7))
    vectors[:, 3:] = 7  # runs of equal vectors cost one bit per component
    data = encode_vectors(vectors)
    assert torch.equal(decode_vectors(data, 5, 7), vectors)
    with pytest.raises(vcodec.StreamError, match="block motion"):
        decode_vectors(data[: len(data) // 2], 5, 7)
    field = block_field(vectors, 4, 18, 30)  # cells past the frame repeat the edge cells
    assert field.shape == (1, 2, 18, 30) and float(field[0, 0, 17, 29]) == vectors[0, 4, 6].item() / 8


def test_vector_predictions_and_bits_match_the_coder():
    """The whole-grid predictor equals the coder's cell-by-cell one (edges, single rows and columns), and
    `vector_bits` is the coder's exact size."""
    from vcodec.models.blocks import _predictions, encode_vectors, predictions, vector_bits

    gen = torch.Generator().manual_seed(3)
    for shape in ((2, 1, 1), (2, 1, 6), (2, 5, 1), (2, 6, 9)):
        grid = torch.randint(-40, 40, shape, generator=gen)
        pred = predictions(grid.numpy())
        for r in range(shape[1]):
            for c in range(shape[2]):
                assert (pred[:, r, c] == _predictions(grid.numpy(), r, c)).all()
        assert (vector_bits(grid) + 7) // 8 == len(encode_vectors(grid))


def test_snapping_block_motion_drops_vector_noise_and_keeps_the_motion():
    """A frame that is its reference shifted by one vector, searched vectors with ±1 noise on a flat region
    (where it changes no warping error): the rate-distortion pass sends the true vector everywhere, at fewer
    bits, and never raises the frame's cost."""
    from vcodec.models.blocks import snap_block_motion, vector_bits
    from vcodec.models.flow import warp

    gen = torch.Generator().manual_seed(5)
    ref = torch.rand(1, 6, 32, 48, generator=gen)
    ref[..., :, 24:] = 0.5  # the right half is flat: vectors there only cost bits
    true = torch.tensor([12, -4])  # 1.5 px right, 0.5 px up
    units = true.view(2, 1, 1).repeat(1, 4, 6)
    cur = warp(ref, units[:, :1, :1].double().div(8).float().view(1, 2, 1, 1).expand(1, 2, 32, 48))
    noisy = units.clone()
    noisy[:, :, 3:] += torch.randint(-1, 2, (2, 4, 3), generator=gen)
    snapped = snap_block_motion(noisy, cur, ref, warp, 8, 1e4, 32, 48)
    assert torch.equal(snapped, units)
    assert vector_bits(snapped) < vector_bits(noisy)
    # A weight of zero on the error makes bits all that count: every cell takes a cheaper vector or keeps its own.
    assert vector_bits(snap_block_motion(noisy, cur, ref, warp, 8, 0.0, 32, 48)) <= vector_bits(noisy)


def test_block_motion_p_frames_decode_bit_exactly_beside_the_motion_codec(tmp_path, sample_frames):
    """Block motion alone, and block motion as one more candidate of the search (the RD-cheapest kept),
    with the shipped weights and their temporal prior: the decoder reproduces the encoder's frames, and
    `info` reports each P-frame's motion."""
    from vcodec.codec import MotionSearch

    clip = write_clip(tmp_path / "b.mkv", [crop(f, 96, 64) for f in sample_frames[:4]])
    for name, search in (("only", MotionSearch(motion_offsets=(), blocks=(4,))),
                         ("mixed", MotionSearch(motion_offsets=(0.0, -1.0), blocks=(4, 8)))):
        stream = tmp_path / f"{name}.lvc"
        vcodec.encode(clip, stream, quality=3, intra_period=0, progress=False, scene_cuts=False, motion=search)
        packets = vcodec.info(stream).packets[1:]
        if name == "only":
            assert all(p.get("motion_block") == 4 and "motion_quality" not in p for p in packets)
            # `info` splits a block-motion frame's payload into its vectors and its latents
            assert all(set(p["substreams"]) == {"vectors", "latents"} and 0 < sum(p["substreams"].values()) < p["bytes"]
                       for p in packets)
        else:
            assert all(p.get("motion_block") in (4, 8) or "motion_quality" in p for p in packets)
        vcodec.decode(stream, tmp_path / f"{name}.y4m", device="cpu", verify=True, progress=False)
    with pytest.raises(ValueError, match="at least one"):
        MotionSearch(motion_offsets=(), blocks=())
    with pytest.raises(ValueError, match="vector_rd"):
        MotionSearch(vector_rd=-1.0)


def test_motion_search_tracks_the_previous_choice_within_a_gop(sample_frames, inter_weights):
    """After a GOP's first P-frame the search codes the previous choice and one neighbour, alternating
    sides; a keyframe starts the full search again."""
    from vcodec.codec import FrameEncoder, MotionSearch
    from vcodec.zoo import load_inter, load_keyframe

    search = MotionSearch(motion_offsets=(0.0, -1.0, -2.0), blocks=())
    assert search.candidates(None, 5) == [0, 1, 2]
    assert search.candidates(1, 1) == [1, 0] and search.candidates(1, 2) == [1, 2]
    assert search.candidates(0, 1) == [0, 1] and search.candidates(2, 2) == [2, 1]
    assert MotionSearch(track=False).candidates(1, 1) == [0, 1, 2]

    keyframe, inter = load_keyframe().model, load_inter(inter_weights).model
    encoder = FrameEncoder(keyframe, 4.0, torch.device("cpu"), inter=inter, intra_period=3, scene_cuts=False,
                           motion=search)
    coded_with: list[list[float]] = []
    code = encoder._code_inter

    def spy(x, index, quality, motion_quality, flow, effort):
        coded_with[-1].append(motion_quality)
        return code(x, index, quality, motion_quality, flow, effort)

    encoder._code_inter = spy
    for i, f in enumerate([crop(f, 96, 64) for f in sample_frames[:5]]):
        coded_with.append([])
        encoder.encode(f, i)
    assert [len(c) for c in coded_with] == [0, 3, 2, 0, 3]


def test_flow_refinement_recovers_a_sub_pixel_shift(sample_frames):
    """Gradient steps on the field recover a known sub-pixel shift of real content from a zero start."""
    from vcodec.color import frame_to_tensor
    from vcodec.metrics import yuv_mse
    from vcodec.models.flow import refine_flow

    ref = frame_to_tensor(crop(sample_frames[0], 128, 96))
    true = torch.tensor([0.6, -0.4]).view(1, 2, 1, 1).expand(1, 2, *ref.shape[-2:])
    cur = warp_yuv420(ref, true)
    rough = torch.zeros(1, 2, *ref.shape[-2:])
    refined = refine_flow(cur, ref, rough, warp_yuv420, steps=40)
    inner = (..., slice(6, -6), slice(6, -6))  # away from the border, where sampling clamps
    before = float(yuv_mse(warp_yuv420(ref, rough)[inner], cur[inner]))
    after = float(yuv_mse(warp_yuv420(ref, refined)[inner], cur[inner]))
    assert after < 0.1 * before
    assert (refined[inner].mean((2, 3)) - true[:, :, 0, 0]).abs().max() < 0.15
    assert refine_flow(cur, ref, rough, warp_yuv420, steps=0) is rough


def test_training_pass_codes_the_sharpened_field_and_still_trains_the_flow_network(sample_frames):
    """`refine_steps` in the training pass: the codec sees the field the encoder would send, and the flow
    network still gets the loss's gradient through the sharpening."""
    from vcodec.color import frame_to_tensor

    torch.manual_seed(0)
    model = InterCodec(InterConfig(**{**TINY.__dict__, "luma_warp": True}))
    ref = frame_to_tensor(crop(sample_frames[0], 64, 64))
    x = warp_yuv420(ref, torch.tensor([0.7, -0.3]).view(1, 2, 1, 1).expand(1, 2, 32, 32))
    q = torch.tensor([3.0])
    plain = model(x, ref, q)
    sharpened = model(x, ref, q, refine_steps=5)
    assert not torch.equal(plain["prediction"], sharpened["prediction"])
    sum(lik.log().sum() for lik in sharpened["likelihoods"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.flow_net.parameters())


def test_block_motion_training_pass_predicts_as_the_encoder_codes(sample_frames):
    """`block` in the training pass: the same search, vectors and prediction as `compress_blocks`, their exact
    size as the motion bits, and no gradient to the motion codec or the flow network."""
    from vcodec.color import frame_to_tensor
    from vcodec.metrics import error_weight
    from vcodec.models.blocks import block_field, encode_vectors

    torch.manual_seed(0)
    model = InterCodec(InterConfig(**{**TINY.__dict__, "luma_warp": True}))
    ref, x = (frame_to_tensor(crop(f, 64, 64)) for f in sample_frames[:2])
    out = model(x, ref, torch.tensor([3.0]), refine_steps=3, block=8)
    model.update_tables()
    lat = model.compress_blocks(x, ref, 3.0, 8, model.estimate_motion(x, ref, 3))
    assert torch.equal(out["motion_bits"], torch.tensor([8.0 * len(encode_vectors(lat.vectors))]))
    with torch.no_grad():
        assert torch.allclose(out["prediction"], model.predict(ref, block_field(lat.vectors, 8, 32, 32)), atol=1e-6)
    (sum(lik.log().sum() for lik in out["likelihoods"]) + out["x_hat"].sum()).backward()
    assert all(p.grad is None for p in [*model.motion.parameters(), *model.flow_net.parameters()])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.refine.parameters())
    # with the encoder's rate-distortion pass over the vectors, at the sample's λ
    with torch.no_grad():
        out = model(x, ref, torch.tensor([3.0]), refine_steps=3, block=8, vector_rd=2.0)
    weight = 2.0 * error_weight(float(model.lmbda(torch.tensor([3.0]))))
    lat = model.compress_blocks(x, ref, 3.0, 8, model.estimate_motion(x, ref, 3), rate_weight=weight)
    assert torch.equal(out["motion_bits"], torch.tensor([8.0 * len(encode_vectors(lat.vectors))]))


def test_p_payload_too_short_for_the_global_motion_is_a_stream_error():
    from vcodec.codec import unpack_payload
    from vcodec.errors import StreamError
    from vcodec.stream import FRAME_P, Packet

    with pytest.raises(StreamError, match="frame 7: payload ends inside the global motion"):
        unpack_payload(Packet(FRAME_P, 7, 3.0, b"\x01"))


def test_reference_rounds_to_8_bits_and_passes_gradients_only_when_propagating():
    from vcodec.color import quantize_tensor
    from vcodec.training.inter import reference

    x_hat = (torch.rand(1, 6, 8, 8) * 1.2 - 0.1).requires_grad_(True)
    cut, live = reference(x_hat, propagate=False), reference(x_hat, propagate=True)
    assert torch.equal(cut, quantize_tensor(x_hat.detach())) and torch.equal(live, cut)
    assert not cut.requires_grad
    live.sum().backward()
    assert torch.equal(x_hat.grad, torch.ones_like(x_hat))


def test_error_propagation_aware_loss_trains_frames_for_their_successors(sample_frames):
    """With `propagate`, the loss is the same number but the second P-frame's error reaches the first one's
    coding: the gradients differ. The flow network's input stays cut (motion search is the encoder's)."""
    from vcodec.color import frame_to_tensor
    from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig
    from vcodec.training.inter import inter_loss

    torch.manual_seed(0)
    model = InterCodec(TINY)
    keyframe = KeyframeCodec(KeyframeConfig(n=16, m=16)).requires_grad_(False)
    seq = torch.stack([frame_to_tensor(crop(f, 64, 64)) for f in sample_frames[:3]], dim=1)
    q = torch.tensor([4.0])
    grads, losses = [], []
    for propagate in (False, True):
        model.zero_grad()
        torch.manual_seed(1)
        loss, _ = inter_loss(model, keyframe, seq, q, propagate=propagate)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.residual.parameters() if p.grad is not None]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert not torch.allclose(grads[0], grads[1])


def test_motion_evaluation_codes_real_bytes_and_sharpening_helps_the_warp(sample_frames):
    """tools/eval_motion.py: the decoded field's real motion bits, and a sharpened field that warps a shifted
    frame better than the (untrained) network's."""
    from tools.eval_motion import measure_pair
    from vcodec.color import YUVFrame
    from vcodec.models.keyframe import KeyframeCodec, KeyframeConfig

    torch.manual_seed(0)
    inter, keyframe = InterCodec(TINY).eval(), KeyframeCodec(KeyframeConfig(n=16, m=16)).eval()
    inter.update_tables()
    keyframe.update_tables()
    prev = crop(sample_frames[0], 64, 64)
    cur = YUVFrame(np.roll(prev.y, 2, axis=1).copy(), np.roll(prev.u, 1, axis=1).copy(),
                   np.roll(prev.v, 1, axis=1).copy())
    row = measure_pair(inter, keyframe, prev, cur, 7.0, [1.0, 7.0], refine_steps=10, blocks=(4,), code=True)
    assert row["sharpened_db"] > row["network_db"]
    assert all(d["bpp"] > 0 and np.isfinite(d["db"]) for d in row["decoded"].values())
    # Block motion on a 1-pixel (4:2:0 grid) shift: every cell finds it, so the warp beats the network's.
    blocks = row["blocks"]["4"]
    assert blocks["db"] > row["network_db"] and blocks["frame_bpp"] > blocks["bpp"] > 0
