"""Model packs: the built-in default, insightface-layout folders, installing, listing, verifying."""
from __future__ import annotations

import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from face_engine.engine import check_runs
from index_builder.cli import main
from models import packs
from models.catalogue import INSIGHTFACE_LICENSE
from models.packs import PackError, folder_pack, install_pack, list_packs, resolve_pack


def test_the_default_pack_is_built_in_and_verified():
    pack = resolve_pack("sface")
    assert pack.detector_kind == "yunet"
    assert pack.verify() == {pack.detector_path.name: True, pack.recognizer_path.name: True}
    assert "MIT" in pack.license and "Apache-2.0" in pack.license


def test_a_folder_of_onnx_files_is_routed_by_shape(mini_pack: Path):
    pack = folder_pack(mini_pack)
    assert (pack.detector_path.name, pack.recognizer_path.name) == ("det_500m.onnx", "mbf_foamliu.onnx")
    assert pack.detector_kind == "scrfd"
    assert (pack.normalisation.mean, pack.normalisation.std) == (127.5, 127.5)  # insightface's rule
    assert f"detector: {INSIGHTFACE_LICENSE}" in pack.license
    assert "recognizer: Apache-2.0" in pack.license


def test_install_from_a_zip_records_digests_and_is_listed(tmp_path: Path, mini_pack: Path):
    archive = tmp_path / "buffalo_mini.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in mini_pack.glob("*.onnx"):
            zipped.write(path, f"buffalo_mini/{path.name}")
    root = tmp_path / "models"
    pack = install_pack(archive, check_runs, models_root=root)
    assert pack.id == "buffalo_mini"
    assert all(pack.verify().values())
    assert [p.id for p in list_packs(root)] == ["sface", "buffalo_mini"]
    assert resolve_pack("buffalo_mini", root).recognizer_id == pack.recognizer_id
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "no staging folder left behind"


def test_reinstalling_replaces_the_pack_and_a_damaged_file_is_caught(tmp_path: Path, mini_pack: Path):
    root = tmp_path / "models"
    install_pack(mini_pack, check_runs, name="mini", license="research only", models_root=root)
    pack = install_pack(mini_pack, check_runs, name="mini", license="research only", models_root=root)
    assert pack.license == "research only"
    with open(pack.recognizer_path, "r+b") as file:
        file.seek(1000)
        file.write(b"\0\0\0\0")
    assert pack.verify()[pack.recognizer_path.name] is False
    with pytest.raises(PackError, match="SHA-256 mismatch"):
        pack.check()


def test_unknown_and_uninstalled_packs_say_what_to_do(tmp_path: Path):
    with pytest.raises(PackError, match="models install"):
        resolve_pack("buffalo_l", tmp_path)
    with pytest.raises(PackError, match="available: sface"):
        resolve_pack("no_such_pack", tmp_path)


def test_a_folder_with_two_recognizers_is_refused(tmp_path: Path, mini_pack: Path):
    for path in mini_pack.glob("*.onnx"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(mini_pack / "mbf_foamliu.onnx", tmp_path / "second.onnx")
    with pytest.raises(PackError, match="more than one recognizer"):
        folder_pack(tmp_path)


def test_models_commands_print_location_status_and_license(tmp_path: Path, mini_pack: Path, monkeypatch, capsys):
    monkeypatch.setenv("OTHERME_MODELS_DIR", str(tmp_path))
    assert main(["models", "install", str(mini_pack), "--name", "mini"]) == 0
    installed = capsys.readouterr().out
    assert "installed pack mini" in installed and "non-commercial" in installed
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "sface" in listing and "mini" in listing and "[verified]" in listing
    assert "MISMATCH" not in listing


def zip_pack(archive: Path, mini_pack: Path, extra: dict[str, bytes] | None = None) -> Path:
    """The real mini pack zipped as insightface ships packs, with `extra` entries beside it."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(mini_pack.glob("*.onnx")):
            zipped.write(path, f"{archive.stem}/{path.name}")
        for name, data in (extra or {}).items():
            zipped.writestr(name, data)
    return archive


def bad_crc(tmp_path: Path, mini_pack: Path) -> Path:
    archive = zip_pack(tmp_path / "bad_crc.zip", mini_pack)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zipped:
        first = zipped.infolist()[0]
    start = first.header_offset + 30 + len(first.filename.encode()) + len(first.extra)
    data[start + 5000] ^= 0xFF  # one byte of the deflated detector
    archive.write_bytes(data)
    return archive


def truncated(tmp_path: Path, mini_pack: Path) -> Path:
    archive = zip_pack(tmp_path / "truncated.zip", mini_pack)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # a download cut short
    return archive


def bomb(tmp_path: Path, mini_pack: Path) -> Path:
    """10 MB of zeros (10 kB deflated) beside the models: over the 10 MB cap the tests set."""
    return zip_pack(tmp_path / "bomb.zip", mini_pack, {"bomb/padding.bin": bytes(10 * 2**20)})


def lying_sizes(tmp_path: Path, mini_pack: Path) -> Path:
    """Declares 1 kB for 10 MB of zeros, in both the entry's header and the central directory."""
    archive = zip_pack(tmp_path / "lying.zip", mini_pack, {"lying/padding.bin": bytes(10 * 2**20)})
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zipped:
        padding = zipped.getinfo("lying/padding.bin")
    struct.pack_into("<I", data, padding.header_offset + 22, 1024)
    central = data.rindex(b"PK\x01\x02")  # the last central directory record: the padding's
    struct.pack_into("<I", data, central + 24, 1024)
    archive.write_bytes(data)
    return archive


def absolute_entry(tmp_path: Path, mini_pack: Path) -> Path:
    return zip_pack(tmp_path / "absolute.zip", mini_pack, {"/tmp/evil.txt": b"x"})


def dotdot_entry(tmp_path: Path, mini_pack: Path) -> Path:
    return zip_pack(tmp_path / "dotdot.zip", mini_pack, {"pack/../../evil.txt": b"x"})


def garbage_onnx(tmp_path: Path, mini_pack: Path) -> Path:
    folder = tmp_path / "garbage"
    folder.mkdir()
    shutil.copy(mini_pack / "det_500m.onnx", folder)
    (folder / "w600k_r50.onnx").write_bytes(b"not a model, only its name\n" * 1000)
    return folder


def refused_by_onnxruntime(tmp_path: Path, mini_pack: Path) -> Path:
    """A recognizer that parses and has the right shapes, but one of its nodes is an unknown op."""
    folder = tmp_path / "unknown_op"
    folder.mkdir()
    shutil.copy(mini_pack / "det_500m.onnx", folder)
    model = onnx.load(str(mini_pack / "mbf_foamliu.onnx"))
    model.graph.node[3].op_type = "NoSuchOp"
    onnx.save(model, str(folder / "mbf_foamliu.onnx"))
    return folder


HOSTILE_PACKS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "bad_crc": (bad_crc, "damaged or unsupported zip: Bad CRC-32"),
    "truncated": (truncated, "not a folder or a complete zip file"),
    "bomb": (bomb, "unpacks to 16 MB; a pack may have at most 10 MB"),
    "lying_sizes": (lying_sizes, "damaged or unsupported zip"),
    "absolute_entry": (absolute_entry, "'/tmp/evil.txt' has an absolute path or '..'"),
    "dotdot_entry": (dotdot_entry, "'pack/../../evil.txt' has an absolute path or '..'"),
    "garbage_onnx": (garbage_onnx, "w600k_r50.onnx: not a valid ONNX model"),
    "refused_by_onnxruntime": (refused_by_onnxruntime, "onnxruntime cannot run its models: [ONNXRuntimeError]"),
}


@pytest.mark.parametrize("kind", HOSTILE_PACKS)
def test_a_hostile_pack_is_refused_in_one_line_leaving_nothing_behind(
        kind: str, tmp_path: Path, mini_pack: Path, monkeypatch, capsys):
    make, says = HOSTILE_PACKS[kind]
    source = make(tmp_path, mini_pack)
    root = tmp_path / "models"
    monkeypatch.setenv("OTHERME_MODELS_DIR", str(root))
    monkeypatch.setattr(packs, "MAX_PACK_BYTES", 10 * 2**20)  # the mini pack is 6.5 MB
    assert main(["models", "install", str(source), "--name", "mini"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert list(root.iterdir()) == [], "no staging folder left behind"
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


@pytest.mark.parametrize("name", ["..", ".", "../mini", "a/b", ".hidden", "x" * 65, "with space", ""])
def test_a_pack_name_must_be_a_plain_name(name: str, tmp_path: Path, mini_pack: Path, monkeypatch, capsys):
    root = tmp_path / "models"
    monkeypatch.setenv("OTHERME_MODELS_DIR", str(root))
    assert main(["models", "install", str(mini_pack), "--name", name]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "letters, digits" in err, err
    assert not root.exists() or list(root.iterdir()) == []


def test_a_failed_or_interrupted_reinstall_keeps_the_installed_pack(tmp_path: Path, mini_pack: Path, monkeypatch):
    root = tmp_path / "models"
    installed = install_pack(mini_pack, check_runs, name="mini", models_root=root)
    with pytest.raises(PackError, match="Bad CRC-32"):
        install_pack(bad_crc(tmp_path, mini_pack), check_runs, name="mini", models_root=root)

    def interrupted(path: Path) -> str:
        raise KeyboardInterrupt  # Ctrl-C while the new pack's files are being hashed

    monkeypatch.setattr(packs, "file_sha256", interrupted)
    with pytest.raises(KeyboardInterrupt):
        install_pack(mini_pack, check_runs, name="mini", models_root=root)
    monkeypatch.undo()
    assert [path.name for path in root.iterdir()] == ["mini"]
    assert all(resolve_pack("mini", root).verify().values())
    assert resolve_pack("mini", root).recognizer_id == installed.recognizer_id


def test_the_recognizer_is_hashed_once_and_again_only_when_its_file_changes(tmp_path: Path, monkeypatch):
    """recognizer_id is read on the kiosk's inference thread: hashing a model file each time costs a query."""
    builtin = resolve_pack("sface")
    expected = builtin.recognizer_id
    recognizer = tmp_path / builtin.recognizer_path.name
    shutil.copy(builtin.recognizer_path, recognizer)
    pack = replace(builtin, recognizer_path=recognizer)
    hashed, sha256 = [], packs.file_sha256
    monkeypatch.setattr(packs, "file_sha256", lambda path: hashed.append(path) or sha256(path))
    assert pack.recognizer_id == expected, "the same weights, the same name"
    assert pack.recognizer_id == replace(pack).recognizer_id == expected
    assert hashed == [recognizer], "hashed once, for this pack object and an equal one"

    with open(recognizer, "ab") as file:  # the same path, new weights: the name must follow the content
        file.write(b"\0")
    assert pack.recognizer_id != expected and len(hashed) == 2
