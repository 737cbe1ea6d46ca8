"""The project's commands run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.workspaces import REPO_ROOT


def predict(*arguments, check=True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.commands.predict", *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write_pngs(folder: Path, images: np.ndarray) -> list[str]:
    folder.mkdir(exist_ok=True)
    names = [f"item{index:03d}.png" for index in range(len(images))]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image[..., 0]).save(folder / name)
    return names
