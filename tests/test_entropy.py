"""Entropy coding and the device-independence of the entropy parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import crop
from vcodec.color import frame_to_tensor
from vcodec.entropy import coder
from vcodec.entropy.exact import ExactHyperSynthesis
from vcodec.entropy.models import scale_indices
from vcodec.entropy.tables import TOTAL, gaussian_scale_table, gaussian_tables
from vcodec.models.keyframe import PAD, pad_to
from vcodec.zoo import load_keyframe


@pytest.fixture(scope="module")
def tables():
    return gaussian_tables(gaussian_scale_table())


def test_tables_are_normalized_integers(tables):
    assert int(tables.counts.sum(1).min()) == int(tables.counts.sum(1).max()) == TOTAL
    for t in range(len(tables)):
        n = int(tables.lengths[t]) + 1
        assert int(tables.counts[t, :n].min()) >= 1


def test_roundtrip_with_escapes(tables):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(len(tables), (20_000,), generator=g)
    scales = gaussian_scale_table()[ids]
    symbols = torch.round(torch.randn(20_000, generator=g, dtype=torch.float64) * scales).long()
    symbols[::997] = torch.tensor([10_000, -123_456, 7, 2**40], dtype=torch.long).repeat(100)[: len(symbols[::997])]
    data = coder.encode(symbols, ids, tables)
    assert torch.equal(coder.decode(data, ids, tables), symbols)


def test_groups_in_one_substream_parse_in_order_with_their_escapes(tables):
    """`encode_parts` puts several groups (some empty, some with escapes) in one ANS stream: a `PartDecoder`
    returns them group by group, and the shared stream costs less than one substream per group."""
    g = torch.Generator().manual_seed(4)
    parts = []
    for n in (3000, 0, 500, 4000):
        ids = torch.randint(len(tables), (n,), generator=g)
        symbols = torch.round(torch.randn(n, generator=g, dtype=torch.float64) * gaussian_scale_table()[ids]).long()
        symbols[::301] = 5_000  # escapes in every non-empty group
        parts.append((symbols, ids))
    data = coder.encode_parts(parts, tables)
    reader = coder.PartDecoder(data)
    for symbols, ids in parts:
        assert torch.equal(reader.decode(ids, tables), symbols)
    assert len(data) < sum(len(coder.encode(s, i, tables)) for s, i in parts)
    assert coder.encode_parts(parts[:1], tables) == coder.encode(*parts[0], tables)  # one group: the same bytes


def test_rate_matches_ideal_code_length(tables):
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(len(tables), (50_000,), generator=g)
    symbols = torch.round(torch.randn(50_000, generator=g, dtype=torch.float64) * gaussian_scale_table()[ids]).long()
    real_bits = len(coder.encode(symbols, ids, tables)) * 8
    ideal = tables.bits(symbols, ids)
    assert ideal <= real_bits <= ideal * 1.01 + 64


def test_empty_and_garbage_inputs(tables):
    ids = torch.zeros(0, dtype=torch.long)
    assert coder.decode(coder.encode(ids, ids, tables), ids, tables).numel() == 0
    with pytest.raises(coder.EntropyDecodeError):
        coder.decode(b"\xff\xff\xff\x7f", torch.zeros(10, dtype=torch.long), tables)


@pytest.fixture(scope="module")
def real_z(sample_frames):
    """Integer hyper-latents of a real frame under the shipped model."""
    model = load_keyframe().model
    x = pad_to(frame_to_tensor(crop(sample_frames[0], 352, 288)), PAD)
    with torch.inference_mode():
        y = model.g_a(x) * model.gain(torch.tensor([4.0]))
        return model, torch.round(model.h_a(y))


def test_exact_parameters_survive_perturbation_threads_and_dtype(real_z):
    """DESIGN §5: the parse must not depend on float details of the parameter path."""
    model, z = real_z
    exact = ExactHyperSynthesis(model.h_s)
    reference = exact(z)
    g = torch.Generator().manual_seed(3)
    for _trial in range(3):
        noisy = z * (1 + 1e-5 * torch.randn(z.shape, generator=g))
        assert torch.equal(exact(noisy), reference)
    assert torch.equal(exact(z.float()), reference) and torch.equal(exact(z.half().double()), reference)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(exact(z), reference)
    finally:
        torch.set_num_threads(threads)


def test_float_parameter_path_would_not_be_safe(real_z):
    """The same perturbation flips scale indices in a plain float hyper-synthesis: the test has teeth."""
    model, z = real_z
    table = gaussian_scale_table()
    with torch.inference_mode():
        _, scales = model.h_s(z).chunk(2, dim=1)
        idx = scale_indices(scales, table)
        g = torch.Generator().manual_seed(4)
        flips = 0
        for _ in range(5):
            noisy = scales * (1 + 1e-5 * torch.randn(scales.shape, generator=g))
            flips += int((scale_indices(noisy, table) != idx).sum())
    exact_scales = ExactHyperSynthesis(model.h_s)(z).chunk(2, dim=1)[1]
    assert flips > 0 and not torch.equal(exact_scales, scales.double())


def test_symbols_identical_with_one_and_two_threads(sample_frames):
    model = load_keyframe().model
    x = frame_to_tensor(crop(sample_frames[1], 192, 128))
    latents = model.compress(x, 3.0)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(model.decompress(latents.substream(), *x.shape[-2:]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], latents.y_hat)
    assert np.isfinite(results[0].numpy()).all()


def test_hyper_latents_beyond_exact_range_are_a_stream_error():
    """A corrupted stream can carry escape values so large that the fixed-point hyper-synthesis would leave
    its exact range: the decoder reports a damaged frame instead of crashing."""
    from vcodec.codec import FrameDecoder, pack_substreams
    from vcodec.errors import StreamError
    from vcodec.stream import FRAME_I, Packet

    model = load_keyframe().model
    z = torch.full((1, model.n, 1, 1), 2**40, dtype=torch.long)
    z_bytes = coder.encode(z, model._z_table_ids(z), model.z_tables)
    for version, payload in (((4, 0), z_bytes), ((3, 0), pack_substreams([z_bytes, b"\0\0\0\0"]))):
        with pytest.raises(StreamError, match="frame 5: entropy decoding failed"):
            FrameDecoder(model, 32, 32, torch.device("cpu"), version=version).parse(Packet(FRAME_I, 5, 3.0, payload))
