"""ONNX files on disk: a graph and the external data files it names, hashed and moved as one."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from embedkit.models.inspect import external_data_locations, load_graph
from embedkit.system import file_sha256

MODEL_FILE = "model.onnx"


def onnx_files(model_path: Path) -> list[Path]:
    """The ONNX file and the external data files it names (a model over protobuf's 2 GB keeps its
    weights beside the graph, e.g. `model.onnx_data`)."""
    model = load_graph(model_path)
    return [Path(model_path), *(Path(model_path).parent / location for location in external_data_locations(model))]


def onnx_sha256(model_path: Path) -> str:
    """The ONNX file's sha256; for a model with external data, the sha256 of its files' names and hashes."""
    files = onnx_files(model_path)
    if len(files) == 1:
        return file_sha256(model_path)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def place_onnx(model_path: Path, directory: Path, transfer: Any) -> None:
    """`model_path` to `directory/model.onnx`, its external data files beside it (names kept: the graph
    names them); `transfer` is shutil.move or shutil.copy."""
    model_file, *data_files = onnx_files(model_path)
    for data_file in data_files:
        transfer(str(data_file), directory / data_file.name)
    transfer(str(model_file), directory / MODEL_FILE)
