"""What `pip install lossbook` gets: a wheel and an sdist with the package, its types, its
license and its metadata, and nothing of the book or the tests.

The distributions are built once, with this environment's setuptools (no network), from a
copy of the working tree: the sdist first, then the wheel from the unpacked sdist, as
``python -m build`` does, so a file missing from the sdist fails the wheel too.
"""

import email
import email.message
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = ("book", "tests", "tools", "benchmarks", "binder")  # in the repository only
BUILD = "import sys; from setuptools import build_meta; getattr(build_meta, sys.argv[1])(sys.argv[2])"


def build(backend_hook: str, source: Path, out: Path) -> Path:
    out.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", BUILD, backend_hook, str(out)], cwd=source, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.iterdir()
    return built


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the working tree, so that building leaves no build/ or egg-info here."""
    copy = tmp_path_factory.mktemp("tree") / "lossbook"
    ignored = shutil.ignore_patterns(
        ".git", ".venv", ".vendor", "_build", "build", "dist", "*.egg-info", "__pycache__", ".*cache*"
    )
    shutil.copytree(ROOT, copy, ignore=ignored)
    return copy


@pytest.fixture(scope="module")
def sdist(tree, tmp_path_factory) -> Path:
    return build("build_sdist", tree, tmp_path_factory.mktemp("sdist"))


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory) -> Path:
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    return build("build_wheel", source, tmp_path_factory.mktemp("wheel"))


def sdist_names(sdist: Path) -> list[str]:
    """The sdist's files, without its ``lossbook-<version>/`` folder."""
    with tarfile.open(sdist) as archive:
        return [m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()]


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def package_files(tree: Path) -> set[str]:
    return {path.relative_to(tree).as_posix() for path in (tree / "lossbook").rglob("*") if path.is_file()
            and "__pycache__" not in path.parts}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_wheel_holds_every_module_and_py_typed_and_no_tests(tree, wheel):
    names = wheel_names(wheel)
    package = [name for name in names if not name.startswith("lossbook-")]
    assert set(package) == package_files(tree)
    assert {"lossbook/py.typed", "lossbook/_version.py", "lossbook/nn.py", "lossbook/__init__.py"} <= set(package)
    assert all(name.startswith("lossbook/") for name in package)
    assert not [name for name in names if name.startswith(LEFT_OUT)]
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_sdist_holds_the_package_readme_license_and_pyproject_only(tree, sdist):
    names = sdist_names(sdist)
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= set(names)
    assert package_files(tree) <= set(names)
    assert not [name for name in names if name.split("/")[0] in LEFT_OUT]
    assert not [name for name in names if name.endswith((".ipynb", ".pyc"))]


def test_one_version_everywhere(sdist, wheel):
    import lossbook
    import lossbook._version

    project = pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lossbook._version.__version__"}
    version = lossbook._version.__version__
    assert lossbook.__version__ == version
    assert wheel_metadata(wheel)["Version"] == version
    assert wheel.name.startswith(f"lossbook-{version}-") and sdist.name == f"lossbook-{version}.tar.gz"
    with tarfile.open(sdist) as archive:
        pkg_info = email.message_from_bytes(archive.extractfile(f"lossbook-{version}/PKG-INFO").read())
    assert pkg_info["Version"] == version


def test_metadata_license_classifiers_and_urls(wheel):
    metadata = wheel_metadata(wheel)
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    license = (ROOT / "LICENSE").read_text()
    assert license.startswith("MIT License") and "Copyright (c) 2026 the lossbook authors" in license
    classifiers = metadata.get_all("Classifier")
    assert {"Typing :: Typed", "Programming Language :: Python :: 3 :: Only"} <= set(classifiers)
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in classifiers)
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: License-Expression instead
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]
    assert versions and metadata["Requires-Python"] == ">=3.10"
    assert all(tuple(map(int, v.split("."))) >= (3, 10) for v in versions)
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    urls = [url.split(", ", 1)[1] for url in metadata.get_all("Project-URL") or []]
    if repository:  # the project's links name the repository _config.yml names
        assert repository in urls and all(url.startswith(repository) for url in urls)
    else:  # no public repository yet: no links to one that does not exist
        assert urls == []
    assert [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r] == ["torch>=2.2"]


def test_setuptools_here_can_build_it():
    """The build backend pyproject asks for is the one these tests (and `pip install -e .`) use."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    (requirement,) = [Requirement(r) for r in pyproject()["build-system"]["requires"] if r.startswith("setuptools")]
    assert requirement.specifier.contains(version("setuptools"))
