"""Model zoo: the registry, and downloads from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import swinir
from swinir import zoo
from swinir.checkpoint import save
from swinir.errors import ZooError
from swinir.model import SwinIR
from swinir.spec import TASKS, ModelSpec

SMALL_X2 = dict(
    upscale=2,
    in_chans=3,
    img_size=16,
    window_size=8,
    img_range=1.0,
    depths=[2],
    embed_dim=12,
    num_heads=[2],
    mlp_ratio=2,
    upsampler="pixelshuffle",
    resi_connection="1conv",
)


# The downloads are tested with a small stand-in served under a released name. A cached file must be the model
# it is named after (its detected task, scale, channels, window and width; its sha256 where the release's is
# known), so the stand-in is SwinIR-M-wide (embed_dim 180) with one block, under a name whose sha256 is unknown.
STANDIN = next(e.name for e in zoo.RELEASED if e.task == "classical_sr" and e.scale == 2 and e.sha256 is None)
STANDIN_X2 = {**SMALL_X2, "embed_dim": 180, "num_heads": [6], "depths": [1]}


class ZooServer:
    """A real HTTP server serving files by name; each file can be served whole, cut short, or as HTML."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(self.path)
                if name not in outer.files:
                    self.send_error(404, "Not Found")
                    return
                body, mode = outer.files[name]
                self.send_response(200)
                if mode == "html":
                    body = b"<html><body>please log in</body></html>"
                    self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body) + (4096 if mode == "truncate" else 0)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/release/v0.0"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def add(self, name: str, body: bytes, mode: str = "ok") -> None:
        self.files[name] = (body, mode)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def zoo_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ZooServer]:
    """A local server as the zoo URL and an empty cache folder as $SWINIR_CACHE."""
    server = ZooServer()
    monkeypatch.setenv("SWINIR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(zoo.URL_ENV, server.base_url)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[SwinIR, bytes]:
    """A small x2 SwinIR saved in the released layout ({'params': state_dict}); (model, file bytes)."""
    torch.manual_seed(0)
    model = SwinIR(**STANDIN_X2).eval()
    path = tmp_path_factory.mktemp("ckpt") / zoo.get(STANDIN).filename
    save(model.state_dict(), path, key="params")
    return model, path.read_bytes()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- registry -------------------------------------------------------------------------------------------


def test_registry_names_all_27_released_checkpoints() -> None:
    assert len(zoo.RELEASED) == 27
    assert all(not e.builtin and e.url == zoo.RELEASE_URL + e.filename for e in zoo.RELEASED)
    assert zoo.RELEASE_URL == "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
    assert len({e.filename for e in zoo.RELEASED}) == 27
    assert {e.task for e in zoo.list_entries()} <= set(TASKS)
    groups = {}
    for e in zoo.RELEASED:
        groups[e.filename.split("_")[0] + e.filename.split("_")[1]] = (
            groups.get(e.filename.split("_")[0] + e.filename.split("_")[1], 0) + 1
        )
    assert groups == {
        "001classicalSR": 8,
        "002lightweightSR": 3,
        "003realSR": 2,
        "004grayDN": 3,
        "005colorDN": 3,
        "006CAR": 4,
        "006colorCAR": 4,
    }


def test_every_name_alias_and_file_name_is_unique() -> None:
    seen: dict[str, str] = {}
    for e in zoo.list_entries():
        for n in e.names:
            key = zoo._key(n)
            assert seen.get(key, e.name) == e.name, f"{n} of {e.name} collides with {seen.get(key)}"
            seen[key] = e.name
    assert len({e.name for e in zoo.list_entries()}) == 32 + 6 + 10  # with Swin2SR's six and HAT's ten


def test_extra_release_files_resolve_by_name_and_file_name() -> None:
    names = [e.name for e in zoo.list_entries(architecture="swinir")]
    assert names[-2:] == ["realsr-x2", "realsr-x4-psnr"]
    x2 = zoo.get("realsr-x2")
    assert x2.scale == 2 and x2.task == "real_sr" and x2.url == zoo.RELEASE_URL + x2.filename
    assert zoo.get("003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth").name == "realsr-x4-psnr"


def test_builtins_come_first() -> None:
    names = [e.name for e in zoo.list_entries()]
    assert names[:3] == ["builtin-x4", "builtin-x2", "builtin-denoise"]
    assert all(e.builtin for e in zoo.list_entries()[:3]) and not any(e.builtin for e in zoo.list_entries()[3:])
    assert [e.name for e in zoo.list_entries("denoise")][0] == "builtin-denoise"


@pytest.mark.parametrize(
    "name, filename",
    [
        ("classical-x4", "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth"),
        ("classical-div2k-x8", "001_classicalSR_DIV2K_s48w8_SwinIR-M_x8.pth"),
        ("lightweight-x2", "002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth"),
        ("realsr-x4", "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth"),
        ("realsr-x4-large", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth"),
        ("denoise-color-25", "005_colorDN_DFWB_s128w8_SwinIR-M_noise25.pth"),
        ("denoise-gray-50", "004_grayDN_DFWB_s128w8_SwinIR-M_noise50.pth"),
        ("jpeg-gray-10", "006_CAR_DFWB_s126w7_SwinIR-M_jpeg10.pth"),
        ("jpeg-color-30", "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg30.pth"),
    ],
)
def test_short_names(name: str, filename: str) -> None:
    entry = zoo.get(name)
    assert entry.filename == filename
    assert zoo.get(filename) is entry
    assert zoo.get(filename[: -len(".pth")]) is entry
    assert zoo.get(name.upper().replace("-", "_")) is entry
    assert zoo.is_known(filename) and zoo.is_known(name)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ZooError, match=r"unknown model 'clasical-x4'.*classical-x4"):
        zoo.get("clasical-x4")
    with pytest.raises(ZooError, match="swinir models"):
        zoo.get("no-such-thing-at-all")
    assert not zoo.is_known("my_model.pth")


def _released_config_key(e: zoo.ZooEntry) -> str:
    if e.task == "classical_sr":
        return f"classical_x{e.scale}"
    if e.task == "lightweight_sr":
        return f"lightweight_x{e.scale}"
    if e.task == "real_sr":
        return "real_L_x4" if "SwinIR-L" in e.filename else "real_M_x4"
    kind = "dn" if e.task == "denoise" else "jpeg"
    return f"{'color' if e.color else 'gray'}_{kind}"


def test_entries_agree_with_the_released_architectures(released_shapes: dict) -> None:
    """Task, scale and channels of each entry are those of the released configuration of its file."""
    used = set()
    for e in zoo.RELEASED:
        key = _released_config_key(e)
        used.add(key)
        spec = ModelSpec.from_kwargs(released_shapes[key]["config"])
        assert (spec.task, spec.scale, spec.in_chans) == (e.task, e.scale, 3 if e.color else 1), e.name
        assert f"w{spec.window_size}_" in e.filename, e.name
        assert (e.noise is not None) == (e.task == "denoise") and (e.jpeg_quality is not None) == (e.task == "jpeg")
    assert used == set(released_shapes)


# -- downloads ------------------------------------------------------------------------------------------


def test_first_use_downloads_then_uses_the_cache(
    zoo_server: ZooServer, small_checkpoint: tuple[SwinIR, bytes], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    original, body = small_checkpoint
    entry = zoo.get(STANDIN)
    zoo_server.add(entry.filename, body)
    cache = tmp_path / "cache"
    assert not zoo.is_cached(entry)

    model = swinir.load(STANDIN)
    assert zoo_server.requests == [f"/release/v0.0/{entry.filename}"]
    assert (cache / entry.filename).read_bytes() == body
    assert _leftovers(cache) == [entry.filename]
    assert zoo.is_cached(entry)
    assert STANDIN in capsys.readouterr().err  # the progress bar
    got, want = model.state_dict(), original.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    # img_size is only recorded by attn_mask buffers, which a saved state dict drops; it changes nothing
    assert model.spec.with_(img_size=16) == original.spec and not model.training

    again = swinir.load(STANDIN)
    path = zoo.resolve(entry.filename, progress=False)
    assert len(zoo_server.requests) == 1
    assert path == cache / entry.filename
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(again(x), original(x))


def test_resolve_with_explicit_cache_dir_and_base_url(
    zoo_server: ZooServer, small_checkpoint: tuple[SwinIR, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(zoo.URL_ENV)
    entry = zoo.get(STANDIN)
    zoo_server.add(entry.filename, small_checkpoint[1])
    path = zoo.resolve(STANDIN, cache_dir=tmp_path / "elsewhere", progress=False, base_url=zoo_server.base_url + "/")
    assert path == tmp_path / "elsewhere" / entry.filename and path.is_file()
    assert not (tmp_path / "cache").exists()


def test_sha256_is_checked(
    zoo_server: ZooServer, small_checkpoint: tuple[SwinIR, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = small_checkpoint[1]
    good = hashlib.sha256(body).hexdigest()
    entry = zoo.get(STANDIN)
    zoo_server.add(entry.filename, body)
    cache = tmp_path / "cache"

    bad_entry = dataclasses.replace(entry, sha256="0" * 64)
    monkeypatch.setattr(zoo, "RELEASED", tuple(bad_entry if e is entry else e for e in zoo.RELEASED))
    with pytest.raises(ZooError, match="sha256") as err:
        zoo.resolve(STANDIN, progress=False)
    assert str(cache / entry.filename) in str(err.value)
    assert _leftovers(cache) == []

    good_entry = dataclasses.replace(entry, sha256=good.upper())
    monkeypatch.setattr(zoo, "RELEASED", tuple(good_entry if e.name == entry.name else e for e in zoo.RELEASED))
    assert zoo.resolve(STANDIN, progress=False).read_bytes() == body
    assert zoo.sha256_of(cache / entry.filename) == good


def test_http_404_names_url_and_path(zoo_server: ZooServer, tmp_path: Path) -> None:
    entry = zoo.get("denoise-color-25")
    with pytest.raises(ZooError) as err:
        swinir.load("denoise-color-25")
    msg = str(err.value)
    assert f"{zoo_server.base_url}/{entry.filename}" in msg
    assert "404" in msg
    assert f"put it at {tmp_path / 'cache' / entry.filename}" in msg
    assert "\n" not in msg
    assert _leftovers(tmp_path / "cache") == []


def test_connection_refused_names_url_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v0.0"
    monkeypatch.setenv(zoo.URL_ENV, base)
    entry = zoo.get("jpeg-gray-10")
    dest = tmp_path / "c" / entry.filename
    with pytest.raises(ZooError) as err:
        zoo.resolve("jpeg-gray-10", cache_dir=tmp_path / "c", progress=False)
    msg = str(err.value)
    assert msg.startswith(f"could not download jpeg-gray-10 from {base}/{entry.filename} (")
    assert "refused" in msg.lower()
    assert msg.endswith(f"download it by hand and put it at {dest}")
    assert _leftovers(tmp_path / "c") == []


def test_transfer_cut_short_leaves_no_file(
    zoo_server: ZooServer, small_checkpoint: tuple[SwinIR, bytes], tmp_path: Path
) -> None:
    entry = zoo.get("lightweight-x3")
    zoo_server.add(entry.filename, small_checkpoint[1], mode="truncate")
    with pytest.raises(ZooError, match=r"could not download lightweight-x3 .*\(connection closed after") as err:
        swinir.load("lightweight-x3")
    assert str(tmp_path / "cache" / entry.filename) in str(err.value)
    assert _leftovers(tmp_path / "cache") == []
    # once the server behaves, the same name downloads fine
    zoo_server.add(entry.filename, small_checkpoint[1])
    assert zoo.resolve("lightweight-x3", progress=False).read_bytes() == small_checkpoint[1]


def test_a_web_page_instead_of_a_checkpoint_is_rejected(zoo_server: ZooServer, tmp_path: Path) -> None:
    entry = zoo.get("realsr-x4")
    zoo_server.add(entry.filename, b"", mode="html")
    with pytest.raises(ZooError, match="not a checkpoint"):
        zoo.resolve("realsr-x4", progress=False)
    assert _leftovers(tmp_path / "cache") == []


# -- built-ins ------------------------------------------------------------------------------------------


def test_missing_builtin_says_it_is_not_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = zoo.ZooEntry("builtin-ghost", "builtin-ghost.safetensors", "classical_sr", scale=4, builtin=True)
    monkeypatch.setattr(zoo, "BUILTINS", (*zoo.BUILTINS, ghost))
    assert not zoo.is_cached(ghost) and zoo.builtin_info(ghost) is None
    with pytest.raises(ZooError, match=r"builtin-ghost is not shipped in this build.*classical-x4"):
        swinir.load("builtin-ghost")


@pytest.mark.parametrize("name", ["builtin-x4", "builtin-x2", "builtin-denoise"])
def test_builtin_resolves_to_the_packaged_file(name: str) -> None:
    entry = zoo.get(name)
    pkg = Path(swinir.__file__).parent / "builtin" / entry.filename
    if not pkg.is_file():
        with pytest.raises(ZooError, match="not shipped in this build"):
            zoo.resolve(name)
        return
    path = zoo.resolve(name)
    assert path.resolve() == pkg.resolve()
    assert path.stat().st_size < 4 * 1024 * 1024
    info = zoo.builtin_info(entry)
    assert info is not None and info.get("metrics")


def test_released_file_name_loads_through_the_zoo(
    zoo_server: ZooServer, small_checkpoint: tuple[SwinIR, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`swinir.load('001_..._x2.pth')` with no such local file fetches the released file."""
    entry = zoo.get(STANDIN)
    zoo_server.add(entry.filename, small_checkpoint[1])
    monkeypatch.chdir(tmp_path)
    model = swinir.load(entry.filename)
    assert model.scale == 2 and len(zoo_server.requests) == 1
    # a local file of that name wins over the zoo
    (tmp_path / entry.filename).write_bytes(b"not a checkpoint")
    with pytest.raises(swinir.CheckpointError, match=entry.filename):
        swinir.load(entry.filename)
    assert len(zoo_server.requests) == 1


def test_entry_without_a_direct_url_names_the_page_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files published only through a web page (HAT's Google Drive folder) are zoo entries too: without a
    cached copy the message says where to get the file and where to put it; once there, it resolves."""
    entry = zoo.ZooEntry("page-only-x4", "Page_Only_SRx4.pth", "classical_sr", scale=4, architecture="swin2sr")
    monkeypatch.setattr(zoo, "SWIN2SR", (*zoo.SWIN2SR, entry))
    monkeypatch.delenv(zoo.URL_ENV, raising=False)
    with pytest.raises(ZooError) as err:
        zoo.resolve("page-only-x4", cache_dir=tmp_path)
    msg = str(err.value)
    assert zoo.SWIN2SR_RELEASE_PAGE in msg and str(tmp_path / "Page_Only_SRx4.pth") in msg and "path" in msg
    assert not list(tmp_path.iterdir())  # nothing written
    (tmp_path / "Page_Only_SRx4.pth").write_bytes(b"PK")
    assert zoo.resolve("page-only-x4", cache_dir=tmp_path) == tmp_path / "Page_Only_SRx4.pth"


# -- HAT's files: on its authors' Google Drive only ------------------------------------------------------


def test_hat_entries_name_the_ten_released_files(shared: Path) -> None:
    """One entry per HAT release file, in its README's order, none with a URL; each answers to its short
    name and its file stem, and states the scale, window and width of the released configuration."""
    from swinir.paths import released_configurations

    released = {k: v for k, v in released_configurations(shared, family=True).items() if v["architecture"] == "hat"}
    hat = zoo.list_entries(architecture="hat")
    assert [e.filename.removesuffix(".pth") for e in hat] == list(released)  # the manifest is in release order
    assert [e.name for e in hat] == [
        *(f"hat-s-classical-x{s}" for s in (2, 3, 4)),
        *(f"hat-classical-x{s}" for s in (2, 3, 4)),
        *(f"hat-l-classical-x{s}" for s in (2, 3, 4)),
        "hat-realsr-x4",
    ]
    for e in hat:
        config = released[e.filename.removesuffix(".pth")]["config"]
        assert e.url == "" and not e.downloadable and e.page == zoo.HAT_PAGE == "https://github.com/XPixelGroup/HAT"
        assert zoo.get(e.filename) is e and zoo.get(e.filename.removesuffix(".pth")) is e and zoo.is_known(e.name)
        want = zoo.expected_config(e)
        assert (want["scale"], want["window_size"], want["embed_dim"]) == (
            config["upscale"],
            config["window_size"],
            config["embed_dim"],
        ), e.name
        millions = released[e.filename.removesuffix(".pth")]["parameters"] / 1e6
        assert f"{millions:.1f}M parameters" in e.description, e.name
    assert [e.name for e in zoo.list_entries("real_sr", "hat")] == ["hat-realsr-x4"]
    assert zoo.expected_config(zoo.get("hat-realsr-x4"))["task"] == "classical_sr"  # what its weights show


def test_hat_entry_without_its_file_says_where_to_get_it_and_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline or not, a HAT name without the file is one line naming the file, the page and the folder;
    nothing is fetched or written. Once the file is there, the name resolves to it."""
    monkeypatch.delenv(zoo.URL_ENV, raising=False)
    monkeypatch.setenv("SWINIR_CACHE", str(tmp_path / "cache"))
    for name in ("hat-l-classical-x4", "HAT-L_SRx4_ImageNet-pretrain.pth", "HAT-L_SRx4_ImageNet-pretrain"):
        with pytest.raises(ZooError) as err:
            swinir.load(name)
        msg = str(err.value)
        assert "\n" not in msg and "HAT-L_SRx4_ImageNet-pretrain.pth" in msg and zoo.HAT_PAGE in msg, msg
        assert f"put it at {tmp_path / 'cache' / 'HAT-L_SRx4_ImageNet-pretrain.pth'}" in msg, msg
    assert not (tmp_path / "cache").exists()  # nothing written
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "HAT_SRx2.pth").write_bytes(b"PK")
    assert zoo.resolve("hat-classical-x2", cache_dir=folder) == folder / "HAT_SRx2.pth"
    assert zoo.resolve("HAT_SRx2", cache_dir=folder) == folder / "HAT_SRx2.pth"
