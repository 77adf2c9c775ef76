"""Sessions: `nox -s train`, `nox -s tests`, `nox -s simulate`, `nox -s lint`, `nox -s typecheck`,
`nox -s wheels`.

The only prerequisite is nox itself (`pip install nox`); every session installs what it needs
into its own virtualenv under `.nox/`.

torch is installed first, on its own, from the spec in the environment variable TOWNLET_TORCH
(default `torch==2.13.0`). Installing anything that depends on torch before torch is there would
let pip pick a build for you, which may be the multi-gigabyte CUDA one. Pick another build with,
for example, `TOWNLET_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"`.
The version that got installed is then pinned (a pip constraint) while the packages go in, so
nothing can swap it for another build behind your back.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
ENV_PKG = "./packages/townlet-env"
TRAIN_PKG = "./packages/townlet-train"
# Pinned so that a new release of a linter cannot turn a green tree red overnight.
RUFF = "ruff==0.17.5"
MYPY = "mypy==2.4.1"
LINT_PATHS = ("packages", "tests", "benchmarks", "noxfile.py", ".ci/observer_extra.py")
SIMULATE_ARGS = ("--level", "L1_full_observability", "--steps", "40", "--every", "20", "--seed", "0")
TRAIN_ARGS = ("--level", "L1_full_observability")

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"  # a fresh clone builds them once; later runs only re-sync
nox.options.error_on_missing_interpreters = True


def install_torch(session: nox.Session) -> Path:
    """Install torch alone first; return a constraints file that pins what was installed."""
    spec = os.environ.get("TOWNLET_TORCH") or "torch==2.13.0"
    session.install(*shlex.split(spec))
    script = "import torch; print('torch-version=' + torch.__version__)"
    output = str(session.run("python", "-c", script, silent=True, log=False))
    found = re.search(r"^torch-version=(\S+)$", output, flags=re.M)
    if found is None:
        session.error(f"could not read the installed torch version:\n{output}")
    pinned = found.group(1)
    constraints = Path(session.create_tmp()) / "torch-constraint.txt"
    constraints.write_text(f"torch=={pinned}\n")
    session.log(f"torch {pinned} installed and pinned")
    return constraints


def has_train() -> bool:
    return (ROOT / TRAIN_PKG / "pyproject.toml").is_file()


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after `--`, e.g. `nox -s tests -- -k docs`)."""
    constraints = install_torch(session)
    packages = ["-e", f"{ENV_PKG}[test,interop,video,observer,observer-test]"]
    if has_train():
        packages += ["-e", f"{TRAIN_PKG}[test,sweep]"]  # sweep: Ray and Optuna, for tests/sweep
    session.install("-c", str(constraints), *packages)
    # pytest's exit code 5 ("no tests collected") fails the session like any other failure.
    session.run("pytest", *session.posargs)


@nox.session
def train(session: nox.Session) -> None:
    """Train an agent on L1 with its default config (DAgger) (`-- ARGS` replaces the defaults).

    For example `nox -s train -- --level L0_minimal --total-steps 300000`.
    """
    constraints = install_torch(session)
    session.install("-c", str(constraints), "-e", ENV_PKG, "-e", TRAIN_PKG)
    session.run("townlet-train", "train", *(session.posargs or TRAIN_ARGS))


@nox.session
def simulate(session: nox.Session) -> None:
    """Simulate a town with random legal actions and print it (`-- ARGS` replaces the defaults).

    For example `nox -s simulate -- --level L3_temporal_mechanics --steps 100 --every 25`.
    """
    constraints = install_torch(session)
    session.install("-c", str(constraints), "-e", ENV_PKG)
    session.run("townlet-env", "simulate", *(session.posargs or SIMULATE_ARGS))


@nox.session(name="observer-extra")
def observer_extra(session: nox.Session) -> None:
    """Install exactly `townlet-env[observer]` (not editable, no test extras) into a clean venv
    and drive `/ws` of `townlet-env serve` with .ci/observer_extra.py (the standard library only)."""
    constraints = install_torch(session)
    session.install("-c", str(constraints), f"{ENV_PKG}[observer]")
    session.run("python", ".ci/observer_extra.py")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check (pass `-- --fix` to let ruff check fix what it can)."""
    session.install(RUFF)
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    session.run("ruff", "check", *session.posargs, *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy with the configuration in the root pyproject.toml."""
    constraints = install_torch(session)
    # the same extras as the tests, so that mypy sees the real types of the RL libraries
    packages = ["-e", f"{ENV_PKG}[interop,observer]"]
    if has_train():
        packages += ["-e", TRAIN_PKG]
    session.install("-c", str(constraints), *packages, MYPY)
    session.run("mypy", *session.posargs)


# The installed wheels must be what is imported: from site-packages, not from the sources.
WHERE_SCRIPT = """
import sys, townlet_env, townlet_train
from pathlib import Path
for module in (townlet_env, townlet_train):
    where = Path(module.__file__).resolve()
    print(module.__name__, where)
    if Path(sys.argv[1]).resolve() in where.parents or "site-packages" not in where.parts:
        sys.exit(f"{module.__name__} is imported from {where}, not from the installed wheel")
"""


@nox.session
def wheels(session: nox.Session) -> None:
    """Build both wheels, install them (not editable) and train with the packaged configs.

    What a user of the wheels gets: the two packages built from a copy of their sources (so no
    stale build/ folder leaks in), installed into this session's virtualenv, then `townlet-train
    train` with a packaged recipe by name and with a level's default, and `townlet-train eval`,
    all run from a temporary folder outside the repository.
    """
    constraints = install_torch(session)
    work = Path(tempfile.mkdtemp(prefix="townlet-wheels-"))
    try:
        for package in (ENV_PKG, TRAIN_PKG):
            source = work / "src" / Path(package).name
            shutil.copytree(ROOT / package, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
            session.run("pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"), str(source))
        built = sorted(str(path) for path in (work / "dist").glob("*.whl"))
        session.install("-c", str(constraints), *built)
        # the session's virtualenv is reused: the same version number must not keep an older build
        session.install("--force-reinstall", "--no-deps", *built)
        session.chdir(work)
        os.environ.pop("PYTHONPATH", None)  # a development PYTHONPATH would import the sources
        session.run("python", "-c", WHERE_SCRIPT, str(ROOT / "packages"))
        session.run("townlet-env", "validate", "L1_full_observability")
        tiny = ("--total-steps", "2048", "--num-envs", "16", "--device", "cpu", "--no-progress")
        session.run("townlet-train", "train", "--config", "L0_minimal_dqn", "--run-dir", "dqn", *tiny)
        session.run("townlet-train", "train", "--level", "L1_full_observability", "--run-dir", "l1", *tiny)
        (checkpoint,) = sorted((work / "l1" / "checkpoints").glob("step_*.pt"))[-1:]
        session.run("townlet-train", "eval", "--checkpoint", str(checkpoint), "--episodes", "2", "--json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
