"""The downloader against a local HTTP server: resume, checksums, offline, nothing corrupt left."""

import hashlib
import io
import tarfile

import numpy as np
import pytest
from http_server import LocalServer as _Server
from http_server import closed_port_url
from PIL import Image

from teachdiff.cli import main
from teachdiff.data import DownloadError, download_dataset, download_file


PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.mark.parametrize("ranges", [True, False], ids=["server-resumes", "server-ignores-range"])
def test_partial_download_is_completed(tmp_path, ranges):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:123_456])
    with _Server({"/file.bin": PAYLOAD}, ranges=ranges) as server:
        download_file(server.url + "/file.bin", dest, size=len(PAYLOAD), md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/file.bin", "bytes=123456-")]
    assert not (tmp_path / "file.bin.part").exists()


def test_checksum_mismatch_is_clear_and_leaves_nothing(tmp_path):
    dest = tmp_path / "file.bin"
    with _Server({"/file.bin": PAYLOAD}) as server:
        with pytest.raises(DownloadError, match="md5 checksum differs[\\s\\S]*partial file was deleted"):
            download_file(server.url + "/file.bin", dest, md5="0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_reported_and_partial_data_kept_for_resuming(tmp_path):
    part = tmp_path / "file.bin.part"
    part.write_bytes(PAYLOAD[:1000])
    with pytest.raises(DownloadError, match="Are you offline[\\s\\S]*1000 bytes downloaded so far are kept"):
        download_file(closed_port_url("/file.bin"), tmp_path / "file.bin", timeout=5, progress=False)
    assert not (tmp_path / "file.bin").exists() and part.read_bytes() == PAYLOAD[:1000]


def test_existing_file_is_never_overwritten(tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"mine")
    with _Server({"/file.bin": PAYLOAD}) as server:
        assert download_file(server.url + "/file.bin", dest, progress=False) == dest
        with pytest.raises(DownloadError, match="left untouched"):
            download_file(server.url + "/file.bin", dest, md5=MD5, progress=False)
    assert dest.read_bytes() == b"mine" and server.requests == []


def _fmd_tar(fovs=20, captures=50, drop_gt=False) -> bytes:
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, format="PNG")
    data = png.getvalue()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for fov in range(1, fovs + 1):
            for c in range(captures):
                add(f"Confocal_FISH/raw/{fov}/HV140_P1005100{c:02d}.png")
            if not (drop_gt and fov == 7):
                add(f"Confocal_FISH/gt/{fov}/avg50.png")
    return buffer.getvalue()


def test_download_dataset_unpacks_verifies_and_does_not_repeat(tmp_path):
    with _Server({"/Confocal_FISH.tar": _fmd_tar()}) as server:
        folder = download_dataset("zebrafish", tmp_path, url=server.url + "/Confocal_FISH.tar", progress=False)
        assert folder == tmp_path / "Confocal_FISH"
        assert len(list((folder / "raw" / "20").glob("*.png"))) == 50 and (folder / "gt" / "1" / "avg50.png").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["Confocal_FISH"]  # archive and staging removed
        assert download_dataset("zebrafish", tmp_path, url=server.url + "/Confocal_FISH.tar", progress=False) == folder
        assert len(server.requests) == 1


def test_download_with_wrong_structure_leaves_no_dataset(tmp_path):
    with _Server({"/Confocal_FISH.tar": _fmd_tar(drop_gt=True)}) as server:
        with pytest.raises(DownloadError, match=r"gt/7/avg50\.png is missing"):
            download_dataset("zebrafish", tmp_path, url=server.url + "/Confocal_FISH.tar", progress=False)
    assert not (tmp_path / "Confocal_FISH").exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no half-extracted staging folder


def test_datasets_without_download_explain_the_layout():
    with pytest.raises(ValueError, match=r"no public download[\s\S]*ROOT/raw/<name>"):
        download_dataset("microtubules")


def test_cli_download_offline_and_not_downloadable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path))
    assert main(["data", "download", "zebrafish", "--url", closed_port_url("/file.bin")]) == 1
    assert "offline" in capsys.readouterr().err
    assert main(["data", "download", "synapses"]) == 1
    assert "no public download" in capsys.readouterr().err
    assert not (tmp_path / "zebrafish" / "Confocal_FISH").exists()
