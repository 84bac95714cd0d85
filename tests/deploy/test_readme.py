"""The README's Deployment section gives commands that fit the files they name: the
manifests it applies exist (and all are applied), the image tag is the one deploy.yaml
pulls, and `docker run` keeps the dump on a volume and waits long enough for it."""

import re
import shlex

from tests.deploy.sources import MANIFESTS, ROOT, resource
from tests.deploy.test_manifests import DUMP_MARGIN_SECONDS


def _commands() -> list[list[str]]:
    """Each shell command of the Deployment section's sh blocks, as words."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Deployment\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command: list[str] = []
            for word in [*shlex.split(line, comments=True), "|"]:
                if word != "|":
                    command.append(word)
                elif command:
                    commands.append(command)
                    command = []
    return commands


def _one(*prefix: str) -> list[str]:
    found = [c for c in _commands() if c[: len(prefix)] == list(prefix)]
    assert len(found) == 1, f"expected one `{' '.join(prefix)}` command, found {len(found)}"
    return found[0]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_every_manifest_is_applied_and_every_applied_file_exists() -> None:
    applied = [_option(c, "-f") for c in _commands() if c[:2] == ["kubectl", "apply"]]
    named = [name for name in applied if name != "-"]
    assert sorted(named) == sorted(MANIFESTS)


def test_config_map_comes_from_a_copy_of_env_example() -> None:
    assert ["cp", ".env.example", ".env"] in _commands()
    create = [c for c in _commands() if c[:3] == ["kubectl", "create", "configmap"]]
    assert create
    assert all(c[3] == "ome-env" and "--from-env-file=.env" in c for c in create)


def test_image_built_is_the_image_deployed_and_run() -> None:
    tag = _option(_one("docker", "build"), "-t")
    run = _one("docker", "run")
    assert run[-1] == tag
    assert _one("docker", "push")[-1] == tag
    container = resource("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == tag


def test_docker_run_keeps_the_dump_on_a_volume_and_waits_for_it() -> None:
    import ome.__main__

    run = _one("docker", "run")
    assert _option(run, "-v").endswith(":/data")
    assert _option(run, "-p") == "8989:8989"
    assert _option(run, "--env-file") == ".env"
    stop_timeout = int(_option(run, "--stop-timeout"))
    assert stop_timeout >= ome.__main__.SHUTDOWN_TIMEOUT + DUMP_MARGIN_SECONDS


def test_static_address_reserved_is_the_one_the_ingress_names() -> None:
    reserved = _one("gcloud", "compute", "addresses", "create")
    annotations = resource("Ingress")["metadata"]["annotations"]
    assert reserved[4] == annotations["kubernetes.io/ingress.global-static-ip-name"]
