"""The environment variable names in .env.example, the Dockerfile and the manifests are the
ones ome.config reads, and .env.example states the values the image really runs with."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ome.config import ENVIRONMENT, Settings, load_settings
from tests.deploy.sources import (
    DOCKERFILE,
    ENV_EXAMPLE,
    image_env,
    read_env_file,
    resource,
)

# The name operators should use for each setting is the first one config looks up.
PRIMARY = {names[0]: field for field, names in ENVIRONMENT.items()}


def test_env_example_is_a_valid_env_file() -> None:
    assert read_env_file(ENV_EXAMPLE)


@pytest.mark.parametrize(
    "content",
    [
        b'OME_LOG_LEVEL="debug"\n',
        b"OME_LOG_LEVEL=debug # more detail\n",
        b"OME_LOG_LEVEL=debug \n",
        b"OME_LOG_LEVEL =debug\n",
        b"OME_LOG_LEVEL\n",
        b"OME_LOG_LEVEL=debug\nOME_LOG_LEVEL=info\n",
        b"\xef\xbb\xbfOME_LOG_LEVEL=debug\n",
    ],
    ids=["quoted", "comment", "trailing-blank", "blank-in-name", "no-value", "twice", "bom"],
)
def test_lines_kubectl_or_docker_would_misread_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / ".env"
    path.write_bytes(content)
    with pytest.raises(AssertionError):
        read_env_file(path)


def test_kubectl_builds_the_ome_env_config_map_from_a_copy(tmp_path: Path) -> None:
    # The kubectl wheel sits beside the interpreter, which need not be on PATH.
    beside = Path(sys.executable).with_name("kubectl")
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is missing: install the test extra"
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    create = ["create", "configmap", "ome-env", "--from-env-file=.env"]
    result = subprocess.run(
        [kubectl, *create, "--dry-run=client", "--output=yaml"],
        cwd=tmp_path,
        # No kubeconfig and no cluster: a client-side dry run needs neither.
        env={"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config_map = yaml.safe_load(result.stdout)
    assert config_map["metadata"]["name"] == "ome-env"
    assert config_map["data"] == {e.key: e.value for e in read_env_file(ENV_EXAMPLE)}


def test_env_example_sets_every_setting_the_service_reads_by_its_primary_name() -> None:
    assert {entry.key for entry in read_env_file(ENV_EXAMPLE)} == set(PRIMARY)


def test_env_example_explains_each_variable_and_names_its_old_spelling() -> None:
    for entry in read_env_file(ENV_EXAMPLE):
        assert entry.comment, f"{entry.key} has no comment line above it"
        for old in ENVIRONMENT[PRIMARY[entry.key]][1:]:
            assert re.search(rf"\b{re.escape(old)}\b", entry.comment), (
                f"the comment above {entry.key} does not mention {old}, which is also read"
            )


def test_env_example_values_are_the_images_effective_defaults() -> None:
    env_file = {entry.key: entry.value for entry in read_env_file(ENV_EXAMPLE)}
    assert load_settings([], environ=env_file) == load_settings([], environ=image_env())


def test_env_example_differs_from_the_service_defaults_only_where_the_image_does() -> None:
    from_file = load_settings([], environ={e.key: e.value for e in read_env_file(ENV_EXAMPLE)})
    changed = {
        field for field in ENVIRONMENT if getattr(from_file, field) != getattr(Settings(), field)
    }
    assert changed == {PRIMARY[name] for name in image_env() if name in PRIMARY}


def test_dockerfile_mentions_only_variables_the_config_reads() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\bOME_[A-Z_]+\b", text))
    assert mentioned, "the Dockerfile sets no OME_ variable"
    assert mentioned <= set(PRIMARY), f"unknown to ome.config: {mentioned - set(PRIMARY)}"
    others = {name for name in image_env() if not name.startswith("PYTHON")}
    assert others <= set(PRIMARY), f"unknown to ome.config: {others - set(PRIMARY)}"


def test_deployment_sets_only_variables_the_config_reads() -> None:
    container = resource("Deployment")["spec"]["template"]["spec"]["containers"][0]
    names = {item["name"] for item in container["env"]}
    assert names <= set(PRIMARY), f"unknown to ome.config: {names - set(PRIMARY)}"


def test_kubernetes_injects_no_variables_beside_the_declared_ones() -> None:
    # Service links define NAME_PORT=tcp://… for every Service in the namespace.
    assert resource("Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False
