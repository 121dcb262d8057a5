"""Download and unpack the benchmark corpus: the numpy and CuPy source distributions from PyPI.

Together they hold C, C++, CUDA and Python: a large real tree for timing ``hepaudit audit``.
Usage: python benchmarks/fetch_corpus.py [--dest benchmarks/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
import urllib.request
from pathlib import Path

CORPUS = {"numpy": "2.3.5", "cupy": "13.6.0"}


def fetch(name: str, version: str, dest: Path) -> Path:
    target = dest / f"{name}-{version}"
    if target.is_dir():
        return target
    request = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        index = json.load(response)
    wanted = f"{name}-{version}.tar.gz"
    sdist = next(f for f in index["files"] if f["filename"] == wanted)
    archive = dest / wanted
    if not archive.exists():
        with urllib.request.urlopen(sdist["url"], timeout=600) as response:
            archive.write_bytes(response.read())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sdist["hashes"]["sha256"]:
        archive.unlink()
        raise SystemExit(f"{archive.name}: checksum mismatch, download removed; run again.")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for name, version in CORPUS.items():
        print(fetch(name, version, args.dest))


if __name__ == "__main__":
    main()
