from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from luminary.serving._batcher import Batcher, Observer
from luminary.serving._repository import ModelRepository
from luminary.serving._types import ModelSpec
from luminary.serving.backends import Backend
from luminary.testing.models import mlp
from tests.unit.serving._fakes import RecordingBackend

MakeBatcher = Callable[..., Batcher]


@pytest.fixture
def make_batcher() -> Iterator[MakeBatcher]:
    """Batchers closed (and their held backends released) when the test ends."""
    made: list[tuple[Batcher, Sequence[Backend]]] = []

    def make(
        spec: ModelSpec, backends: Sequence[Backend], observer: Observer | None = None
    ) -> Batcher:
        batcher = Batcher(spec, backends, observer)
        made.append((batcher, backends))
        return batcher

    yield make
    for batcher, backends in made:
        for b in backends:
            if isinstance(b, RecordingBackend):
                b.hold.set()
        batcher.close(wait=True)


@pytest.fixture(scope="session")
def mlp_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two MLPs built once: 16→5 (``five``) and 16→3 (``three``)."""
    folder = tmp_path_factory.mktemp("mlp-models")
    return {
        "five": mlp(folder / "five.onnx"),
        "three": mlp(folder / "three.onnx", sizes=(16, 8, 3), seed=3),
    }


@pytest.fixture
def place(mlp_models: dict[str, Path]) -> Callable[[str, Path], Path]:
    """Copy a prebuilt model to ``dest`` (parents created)."""

    def copy(which: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mlp_models[which], dest)
        return dest

    return copy


@pytest.fixture
def repository() -> Iterator[ModelRepository]:
    repo = ModelRepository()
    yield repo
    repo.close()
