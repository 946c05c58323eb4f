"""VGG19 extractor and perceptual loss.

Everything here uses RANDOM VGG19 weights (the ImageNet file cannot be fetched in CI): the tests check
the layer layout, the pre-ReLU taps, the loss arithmetic and the weight-loading path, not the
pretrained features. The loading path is exercised with a locally made file in the torchvision
format, served by a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from swinir.errors import SwinIRError, ZooError
from swinir.train.vgg import (
    LAYER_NAMES,
    VGG19_FILENAME,
    VGG19_URL,
    PerceptualLoss,
    VGG19Features,
    load_vgg19,
    vgg19_weights_path,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is fastest and avoids spin-waiting on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_layer_indices_match_torchvision_vgg19_features():
    m = VGG19Features(layers=(36,))
    convs = [i for i, layer in enumerate(m.features) if isinstance(layer, nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert [i for i, layer in enumerate(m.features) if isinstance(layer, nn.MaxPool2d)] == [4, 9, 18, 27, 36]
    assert all(isinstance(m.features[i + 1], nn.ReLU) for i in convs)
    assert [LAYER_NAMES[i] for i in (2, 7, 16, 25, 34)] == ["conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"]
    # the 16 convolutions of VGG19: 20,024,384 parameters, as torchvision's features
    assert sum(p.numel() for p in m.parameters()) == 20_024_384
    assert [tuple(m.features[i].weight.shape) for i in (2, 7, 16, 25, 34)] == [
        (64, 64, 3, 3),
        (128, 128, 3, 3),
        (256, 256, 3, 3),
        (512, 512, 3, 3),
        (512, 512, 3, 3),
    ]


def test_taps_are_pre_relu_outputs_of_the_normalised_input():
    torch.manual_seed(0)
    m = VGG19Features(layers=(2, 7)).eval()  # random weights
    x = torch.rand(1, 3, 16, 16)
    f2, f7 = m(x)
    xn = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    ref2 = m.features[2](torch.relu(m.features[0](xn)))
    torch.testing.assert_close(f2, ref2)
    assert (f2 < 0).any() and (f7 < 0).any()  # before the ReLU
    assert f7.shape == (1, 128, 8, 8)


def test_perceptual_loss_arithmetic_and_gradients():
    torch.manual_seed(1)
    vgg = load_vgg19(pretrained=False)  # random weights, frozen
    loss = PerceptualLoss(vgg)
    a = torch.rand(1, 3, 16, 16, requires_grad=True)  # 16x16: conv5_4 still sees a 1x1 map
    b = torch.rand(1, 3, 16, 16)
    v = loss(a, b)
    with torch.no_grad():
        fa, fb = vgg(a), vgg(b)
        manual = sum(w * (x - y).abs().mean() for w, x, y in zip((0.1, 0.1, 1, 1, 1), fa, fb))
    torch.testing.assert_close(v, manual)
    assert v.item() > 0 and loss(b, b).item() == 0.0
    v.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())
    loss.train()
    assert not vgg.training
    with pytest.raises(ValueError):
        PerceptualLoss(vgg, weights=(1.0, 1.0))


# ------------------------------------------------------------------------------------------- weight files
@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision-format VGG19 file with random features and (shrunken) classifier keys."""
    torch.manual_seed(2)
    sd = dict(VGG19Features(layers=(36,)).state_dict())
    sd.update(
        {
            "classifier.0.weight": torch.zeros(2, 2),
            "classifier.0.bias": torch.zeros(2),
            "classifier.6.weight": torch.zeros(3, 2),
        }
    )
    folder = tmp_path_factory.mktemp("srv")
    tmp = folder / "x.pth"
    torch.save(sd, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = folder / f"vgg19-{digest[:8]}.pth"  # named like PyTorch's files: sha256 prefix
    tmp.rename(final)
    return final, sd


@pytest.fixture()
def server(vgg_file):
    handler = functools.partial(_QuietHandler, directory=str(vgg_file[0].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _check_loaded(model: VGG19Features, sd: dict[str, torch.Tensor]) -> None:
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0)


def test_load_from_a_local_path(vgg_file):
    path, sd = vgg_file
    _check_loaded(load_vgg19(path), sd)


def test_download_into_the_cache_then_reuse_it(vgg_file, server, tmp_path, monkeypatch):
    path, sd = vgg_file
    cache = tmp_path / "cache"
    monkeypatch.setenv("SWINIR_CACHE", str(cache))
    url = f"{server}/{path.name}"
    model = load_vgg19(url=url, progress=False)
    _check_loaded(model, sd)
    assert (cache / path.name).read_bytes() == path.read_bytes()
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary left behind
    # second time: from the cache, the server is not needed
    assert vgg19_weights_path(url="http://127.0.0.1:9/" + path.name) == cache / path.name


def test_a_file_whose_hash_does_not_match_its_name_is_discarded(vgg_file, server, tmp_path, monkeypatch):
    path, _ = vgg_file
    wrong = path.with_name("vgg19-00000000.pth")
    wrong.write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    monkeypatch.setenv("SWINIR_CACHE", str(cache))
    try:
        with pytest.raises(ZooError, match="sha256"):
            vgg19_weights_path(url=f"{server}/{wrong.name}", progress=False)
    finally:
        wrong.unlink()
    assert not any(cache.iterdir())


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_message_names_the_url_and_the_exact_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SWINIR_CACHE", str(tmp_path / "c"))
    url = f"http://127.0.0.1:{_closed_port()}/{VGG19_FILENAME}"
    with pytest.raises(ZooError) as info:
        load_vgg19(url=url, progress=False)
    msg = str(info.value)
    assert url in msg and str(tmp_path / "c" / VGG19_FILENAME) in msg and "\n" not in msg
    with pytest.raises(ZooError, match=str(tmp_path / "c" / VGG19_FILENAME)):
        vgg19_weights_path(download=False)
    assert VGG19_URL.endswith(VGG19_FILENAME)


def test_bad_local_files_are_clear_errors(tmp_path):
    with pytest.raises(SwinIRError, match="does not exist"):
        load_vgg19(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(SwinIRError, match="cannot read it"):
        load_vgg19(junk)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(SwinIRError, match="not a VGG19 weights file"):
        load_vgg19(other)
