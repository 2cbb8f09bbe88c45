"""Model packs: the built-in default, insightface-layout folders, installing, listing, verifying."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from index_builder.cli import main
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
    pack = install_pack(archive, models_root=root)
    assert pack.id == "buffalo_mini"
    assert all(pack.verify().values())
    assert [p.id for p in list_packs(root)] == ["sface", "buffalo_mini"]
    assert resolve_pack("buffalo_mini", root).recognizer_id == pack.recognizer_id
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "no staging folder left behind"


def test_reinstalling_replaces_the_pack_and_a_damaged_file_is_caught(tmp_path: Path, mini_pack: Path):
    root = tmp_path / "models"
    install_pack(mini_pack, name="mini", license="research only", models_root=root)
    pack = install_pack(mini_pack, name="mini", license="research only", models_root=root)
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
