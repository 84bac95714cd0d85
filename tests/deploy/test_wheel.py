"""The image's recipe, replayed without Docker: build the wheel from exactly the files the
Dockerfile copies, install it alone into a fresh virtual environment, start the image's
own command with the image's and .env.example's environment, and check that it answers
Healthy, passes the image's HEALTHCHECK, writes its dump on SIGTERM and restores it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ome.__main__ import SHUTDOWN_TIMEOUT
from ome.persistence import read_dump
from tests.builders import MARKET
from tests.deploy.sources import (
    ENV_EXAMPLE,
    ROOT,
    final_stage,
    image_env,
    instructions,
    read_env_file,
    stages,
    start_command,
)

START_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Installed:
    bin: Path
    wheel: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("image")
    source = root / "src"
    source.mkdir()
    # The build stage's COPY lines decide what the wheel is built from.
    for command in instructions(stages()[0], "COPY"):
        for name in command.value[:-1]:
            path = ROOT / name.removeprefix("./").rstrip("/")
            if path.is_dir():
                shutil.copytree(
                    path, source / path.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(path, source / path.name)
    # No build isolation: the image builds with a fresh setuptools from the index; here
    # the test environment's own setuptools keeps the test fast and offline.
    pip = [sys.executable, "-m", "pip"]
    quiet = ["--no-deps", "--no-cache-dir", "--quiet"]
    dist = root / "dist"
    # As the image builds it: the engine compiled with mypyc, when a C compiler is at hand.
    compiled = {"MYPYC_ENGINE": "1"} if shutil.which("cc") else {}
    _run(
        *pip, "wheel", *quiet, "--no-build-isolation", "-w", str(dist), str(source),
        cwd=root, env={**os.environ, **compiled},
    )  # fmt: skip
    (wheel,) = dist.glob("tracer_ome-*.whl")

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run(python, "-c", where, cwd=root))
    # The dependencies are borrowed from the test environment through a path entry
    # placed after the new environment's own site-packages, so installing needs no
    # index; `ome` itself must still come from the wheel (checked below). A .pth
    # line only appends the folder: the .pth files inside it, such as an editable
    # install of this project, are not run.
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_borrowed_dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    _run(*pip, "--python", python, "install", *quiet, "--no-index", str(wheel), cwd=root)
    return Installed(env_dir / "bin", wheel)


def _run(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Runs a helper command; `cwd` keeps the checkout off `python -c`'s import path."""
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{argv[:4]} failed:\n{result.stdout}{result.stderr}"
    return result.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(installed: Installed, port: int, dumpfile: Path) -> dict[str, str]:
    """What `docker run --env-file .env` gives the process, pointed at this machine."""
    env = {"PATH": f"{installed.bin}{os.pathsep}{os.environ['PATH']}"}
    env |= image_env()
    env |= {entry.key: entry.value for entry in read_env_file(ENV_EXAMPLE)}
    env |= {
        "OME_LISTEN_ADDRESS": "127.0.0.1",
        "OME_LISTEN_PORT": str(port),
        "OME_DUMPFILE": str(dumpfile),
        "OME_JOURNAL_DIR": str(dumpfile.parent / "journal"),
    }
    return env


def _resolve(argv: list[str] | tuple[str, ...], installed: Installed) -> list[str]:
    program = shutil.which(argv[0], path=str(installed.bin))
    assert program, f"{argv[0]} is not installed by the wheel"
    return [program, *argv[1:]]


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        # An answer, just not a 2xx one: show it rather than waiting on.
        with error:
            return error.code, json.loads(error.read() or b"null")


def _post(url: str, body: object) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=2) as response:
        status: int = response.status
        return status


@dataclass(slots=True)
class Service:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_healthy(self) -> object:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the service exited:\n{self.output()}"
            try:
                # `/` answers while the state is still restoring; `/ready` says when it is done.
                if _get(self.url + "/ready")[0] == 200:
                    return _get(self.url + "/")
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"no answer within {START_TIMEOUT} s:\n{self.output()}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=SHUTDOWN_TIMEOUT + 5)


@dataclass(slots=True)
class Launcher:
    """Starts the image's command, every time on the same port and dumpfile."""

    installed: Installed
    folder: Path
    env: dict[str, str]
    dumpfile: Path
    started: list[Service]

    def run(self) -> Service:
        log = self.folder / f"service-{len(self.started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                _resolve(start_command(), self.installed),
                cwd=self.folder / "work",
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        service = Service(process, f"http://127.0.0.1:{self.env['OME_LISTEN_PORT']}", log)
        self.started.append(service)
        return service


@pytest.fixture
def launcher(installed: Installed, tmp_path: Path) -> Iterator[Launcher]:
    (tmp_path / "work").mkdir()
    dumpfile = tmp_path / "data" / "omedump.json"
    dumpfile.parent.mkdir()
    env = _environment(installed, _free_port(), dumpfile)
    launcher = Launcher(installed, tmp_path, env, dumpfile, [])
    yield launcher
    for service in launcher.started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()


def test_the_wheel_holds_only_the_package_and_installs_alone(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
    # Besides `ome`, a compiled wheel holds mypyc's runtime module for it.
    others = {top for top in tops if top != "ome" and not top.endswith(".dist-info")}
    assert all("__mypyc" in top and top.endswith(".so") for top in others), others
    home = installed.bin.parent
    python = str(installed.bin / "python")
    location = _run(python, "-c", "import ome; print(ome.__file__)", cwd=home)
    assert Path(location).is_relative_to(home)
    assert (installed.bin / "ome").is_file()
    if shutil.which("cc"):
        engine = _run(python, "-c", "import ome.engine.book as m; print(m.__file__)", cwd=home)
        assert engine.endswith(".so"), f"the wheel's engine is not compiled: {engine}"


def test_image_command_serves_healthy_dumps_on_sigterm_and_restores(
    installed: Installed, launcher: Launcher
) -> None:
    service = launcher.run()
    assert service.wait_healthy() == (200, {"status": 200, "message": "Healthy"})
    assert _post(service.url + "/book", {"market": MARKET}) == 201

    (check,) = instructions(final_stage(), "HEALTHCHECK")
    healthcheck = _resolve(check.value[1:], installed)
    passed = subprocess.run(healthcheck, env=launcher.env, timeout=10, check=False)
    assert passed.returncode == 0

    assert service.terminate() == 0, service.output()
    state = read_dump(launcher.dumpfile)
    assert state is not None
    assert state.exchange.markets() == [MARKET]
    failed = subprocess.run(
        healthcheck, env=launcher.env, timeout=10, check=False, capture_output=True
    )
    assert failed.returncode != 0

    again = launcher.run()
    again.wait_healthy()
    assert _get(again.url + "/book") == (200, {"markets": [MARKET]})
    assert again.terminate() == 0, again.output()
