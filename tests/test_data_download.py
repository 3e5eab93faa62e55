"""The downloader against a local HTTP server: resume, checksums, offline, nothing corrupt left."""

import hashlib
import io
import shutil
import tarfile

import numpy as np
import pytest
from http_server import LocalServer as _Server
from http_server import closed_port_url
from PIL import Image

from teachdiff.cli.main import main
from teachdiff.data import DownloadError, download_dataset, download_file
from teachdiff.data.download import verify_fmd_structure


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
        # archive and staging removed; the archive's sha256 recorded for later downloads
        assert sorted(p.name for p in tmp_path.iterdir()) == ["Confocal_FISH", "Confocal_FISH.tar.sha256"]
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


# --- several sources, answers that are not the file, checksums recorded, --from ---------------------

from http_server import Reply  # noqa: E402

from teachdiff.data.registry import get_dataset_info  # noqa: E402

ARCHIVE = _fmd_tar(fovs=20, captures=50)
CHALLENGE = Reply(b"<!DOCTYPE html><html><body>Please verify you are a human</body></html>", status=202,
                  headers={"Content-Type": "text/html; charset=utf-8"})


def _left_in(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_registry_lists_the_three_sources_in_order():
    urls = get_dataset_info("zebrafish").download.urls
    assert urls == ("https://ndownloader.figshare.com/files/43648074",
                    "https://api.figshare.com/v2/file/download/43648074",
                    "https://drive.google.com/uc?export=download&id=1SxmsythWfxnfKJfGWpT_7Adebi8jUK98")


@pytest.mark.parametrize("reply, message", [
    (Reply(b"<html><body>Forbidden</body></html>", status=403, headers={"Content-Type": "text/html"}),
     r"answered 403 Forbidden, not the file"),
    (CHALLENGE, r"answered 202 with an HTML page"),
    (Reply(b"  <!doctype html><title>x</title>"), r"answered 200 with an HTML page"),  # no Content-Type: by its bytes
    (Reply(b"accepted, come back later", status=202), r"answered 202 Accepted, not the file"),
], ids=["403", "202-html", "200-html-sniffed", "202-not-html"])
def test_an_answer_that_is_not_the_file_is_refused_and_leaves_nothing(tmp_path, reply, message):
    root = tmp_path / "zf"
    with _Server({"/bad": reply}) as server:
        with pytest.raises(DownloadError, match=message + r"[\s\S]*--from <the downloaded Confocal_FISH.tar>"):
            download_dataset("zebrafish", root, url=server.url + "/bad", progress=False)
    assert not root.exists()  # no archive, no .part, no checksum record, no staging folder, no folder


def test_the_next_source_is_tried_after_a_refusal(tmp_path):
    root = tmp_path / "zf"
    files = {"/403": Reply(b"no", status=403), "/challenge": CHALLENGE, "/Confocal_FISH.tar": ARCHIVE}
    with _Server(files) as server:
        folder = download_dataset("zebrafish", root, url=[server.url + p for p in files], progress=False)
    assert [p for p, _ in server.requests] == ["/403", "/challenge", "/Confocal_FISH.tar"]
    assert folder == root / "Confocal_FISH" and not verify_fmd_structure(folder)
    assert sorted(p.name for p in root.iterdir()) == ["Confocal_FISH", "Confocal_FISH.tar.sha256"]


def test_a_truncated_body_is_caught_by_content_length_and_resumed_from_the_next_source(tmp_path):
    root = tmp_path / "zf"
    cut = len(ARCHIVE) // 3
    truncated = Reply(ARCHIVE[:cut], declared_length=len(ARCHIVE))
    with _Server({"/cut": truncated, "/Confocal_FISH.tar": ARCHIVE}) as server:
        with pytest.raises(DownloadError, match=f"stopped at {cut} of {len(ARCHIVE)} bytes"):
            download_dataset("zebrafish", root, url=server.url + "/cut", progress=False)
        assert _left_in(root) == ["Confocal_FISH.tar.part"]  # kept for resuming, never the archive
        assert (root / "Confocal_FISH.tar.part").stat().st_size == cut
        folder = download_dataset("zebrafish", root, url=[server.url + "/cut", server.url + "/Confocal_FISH.tar"],
                                  progress=False)
    assert server.requests[-1] == ("/Confocal_FISH.tar", f"bytes={cut}-")  # resumed, not restarted
    assert not verify_fmd_structure(folder)
    assert (root / "Confocal_FISH.tar.sha256").read_text().split()[0] == hashlib.sha256(ARCHIVE).hexdigest()


DRIVE_ID = "1SxmsythWfxnfKJfGWpT_7Adebi8jUK98"
DRIVE_FORM = (
    '<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>'
    "<p>Google Drive can't scan this file for viruses.</p>"
    '<form id="download-form" action="{url}/download" method="get">'
    '<input type="submit" value="Download anyway"/>'
    f'<input type="hidden" name="id" value="{DRIVE_ID}"><input type="hidden" name="export" value="download">'
    '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="a1b2-c3"></form>'
    "</body></html>"
)
DRIVE_LINK = (
    "<html><body><a id=\"uc-download-link\" "
    f"href=\"/uc?export=download&amp;confirm=Xy_9&amp;id={DRIVE_ID}\">Download anyway</a></body></html>"
)


@pytest.mark.parametrize("page, target", [
    (DRIVE_FORM, f"/download?id={DRIVE_ID}&export=download&confirm=t&uuid=a1b2-c3"),
    (DRIVE_LINK, f"/uc?export=download&confirm=Xy_9&id={DRIVE_ID}"),
], ids=["form", "confirm-link"])
def test_google_drive_confirmation_page_is_followed_with_its_cookie(tmp_path, page, target):
    root = tmp_path / "zf"
    start = f"/uc?export=download&id={DRIVE_ID}"
    files = {start: None, target: ARCHIVE}
    with _Server(files) as server:
        files[start] = Reply(page.replace("{url}", server.url).encode(), headers={
            "Content-Type": "text/html; charset=utf-8", "Set-Cookie": "download_warning_1=Xy_9; Path=/"})
        folder = download_dataset("zebrafish", root, url=server.url + start, progress=False)
    assert [p for p, _ in server.requests] == [start, target]
    assert server.cookies[1] == "download_warning_1=Xy_9"
    assert not verify_fmd_structure(folder)


def test_a_drive_page_without_a_confirmation_is_refused(tmp_path):
    page = Reply(b"<html><body>Quota exceeded: too many users have viewed or downloaded this file</body></html>",
                 headers={"Content-Type": "text/html"})
    with _Server({"/uc": page}) as server:
        with pytest.raises(DownloadError, match="answered 200 with an HTML page"):
            download_dataset("zebrafish", tmp_path, url=server.url + "/uc", progress=False)
    assert _left_in(tmp_path) == []


def test_sha256_recorded_on_the_first_good_download_is_checked_after(tmp_path):
    root = tmp_path / "zf"
    other = _fmd_tar(fovs=20, captures=50, drop_gt=False) + b"\0" * 10240  # a valid tar, other bytes
    with _Server({"/Confocal_FISH.tar": ARCHIVE, "/changed.tar": other}) as server:
        download_dataset("zebrafish", root, url=server.url + "/Confocal_FISH.tar", progress=False)
        record = root / "Confocal_FISH.tar.sha256"
        assert record.read_text() == f"{hashlib.sha256(ARCHIVE).hexdigest()}  Confocal_FISH.tar\n"
        shutil.rmtree(root / "Confocal_FISH")  # the user removes the data; the record stays
        with pytest.raises(DownloadError, match="sha256 checksum differs[\\s\\S]*partial file was deleted"):
            download_dataset("zebrafish", root, url=server.url + "/changed.tar", progress=False)
        assert _left_in(root) == ["Confocal_FISH.tar.sha256"]
        assert not verify_fmd_structure(download_dataset("zebrafish", root, url=server.url + "/Confocal_FISH.tar",
                                                         progress=False))


def test_from_file_unpacks_a_browser_download_and_keeps_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path / "data"))
    archive = tmp_path / "Downloads" / "Confocal_FISH.tar"
    archive.parent.mkdir()
    archive.write_bytes(ARCHIVE)
    assert main(["data", "download", "zebrafish", "--from", str(archive)]) == 0
    root = tmp_path / "data" / "zebrafish"
    assert "ready in" in capsys.readouterr().out
    assert archive.read_bytes() == ARCHIVE  # the user's file is never deleted
    assert not verify_fmd_structure(root / "Confocal_FISH")
    assert (root / "Confocal_FISH.tar.sha256").read_text().split()[0] == hashlib.sha256(ARCHIVE).hexdigest()


def test_from_file_refuses_an_html_page_and_a_file_other_than_the_recorded_one(tmp_path, capsys):
    root = tmp_path / "zf"
    page = tmp_path / "Confocal_FISH.tar"
    page.write_bytes(CHALLENGE.body)
    with pytest.raises(DownloadError, match="is an HTML page, not the Confocal_FISH.tar archive"):
        download_dataset("zebrafish", root, from_file=page)
    assert _left_in(root) == []
    good = tmp_path / "good.tar"
    good.write_bytes(ARCHIVE)
    download_dataset("zebrafish", root, from_file=good)
    shutil.rmtree(root / "Confocal_FISH")
    changed = tmp_path / "changed.tar"
    changed.write_bytes(ARCHIVE + b"\0" * 10240)
    with pytest.raises(DownloadError, match="differs from the Confocal_FISH.tar downloaded before"):
        download_dataset("zebrafish", root, from_file=changed)
    assert main(["data", "download", "zebrafish", "--root", str(root), "--from", str(tmp_path / "missing.tar")]) == 1
    assert "is not a file" in capsys.readouterr().err


def test_cli_tries_repeated_urls_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path))
    with _Server({"/challenge": CHALLENGE, "/Confocal_FISH.tar": ARCHIVE}) as server:
        assert main(["data", "download", "zebrafish", "--url", server.url + "/challenge",
                     "--url", server.url + "/Confocal_FISH.tar"]) == 0
    assert [p for p, _ in server.requests] == ["/challenge", "/Confocal_FISH.tar"]
    assert not verify_fmd_structure(tmp_path / "zebrafish" / "Confocal_FISH")
