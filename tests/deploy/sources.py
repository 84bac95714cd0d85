"""Readers for the deployment files, shared by the deploy tests.

The Dockerfile is parsed with the `dockerfile` package (BuildKit's own parser),
so line continuations, JSON forms and flags are read the way `docker build`
reads them. `.env.example` is read by the rules that both
`kubectl create configmap --from-env-file` and `docker run --env-file` apply,
and refused where the two would disagree with what the line appears to say.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
MANIFESTS = ("deploy.yaml", "service.yaml", "ingress.yaml", "cert.yaml")

# kubectl's validation.IsEnvVarName; docker's --env-file accepts a superset.
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every document of every manifest, in file order."""
    found = []
    for name in MANIFESTS:
        for doc in yaml.safe_load_all((ROOT / name).read_text(encoding="utf-8")):
            if doc is not None:
                found.append((name, doc))
    return found


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest document of `kind` (and `name`, when given)."""
    matches = [
        doc
        for _, doc in manifests()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def dockerfile_commands() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def stages() -> list[list[dockerfile.Command]]:
    """The instructions of each build stage, FROM first."""
    result: list[list[dockerfile.Command]] = []
    for command in dockerfile_commands():
        if command.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(command)
    return result


def final_stage() -> list[dockerfile.Command]:
    return stages()[-1]


def instructions(stage: list[dockerfile.Command], name: str) -> list[dockerfile.Command]:
    return [command for command in stage if command.cmd == name]


def image_env() -> dict[str, str]:
    """The ENV defaults the final image starts with."""
    env: dict[str, str] = {}
    for command in instructions(final_stage(), "ENV"):
        pairs = command.value
        assert len(pairs) % 2 == 0, f"ENV on line {command.start_line} is not KEY=VALUE pairs"
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            assert not value.startswith(('"', "'")), f"quoted ENV value for {key}"
            env[key] = value
    return env


def start_command() -> list[str]:
    """What the image runs: ENTRYPOINT followed by CMD, both required in exec form."""
    stage = final_stage()
    argv: list[str] = []
    for name in ("ENTRYPOINT", "CMD"):
        found = instructions(stage, name)
        if found:
            last = found[-1]
            assert last.json, f"{name} on line {last.start_line} is in shell form"
            argv.extend(last.value)
    return argv


@dataclass(frozen=True, slots=True)
class EnvLine:
    key: str
    value: str
    line: int
    comment: str  # the comment lines directly above, joined


def read_env_file(path: Path) -> list[EnvLine]:
    """The KEY=VALUE lines of an env file, refusing anything the two tools would misread."""
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), f"{path.name} starts with a byte-order mark"
    text = raw.decode("utf-8")
    lines: list[EnvLine] = []
    comment: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path.name}:{number}"
        stripped = line.lstrip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        assert "=" in stripped, f"{where}: no '=' (kubectl would read the value from its own env)"
        key, value = stripped.split("=", 1)
        assert _ENV_NAME.fullmatch(key), f"{where}: {key!r} is not a valid variable name"
        # Neither tool strips quotes, trailing blanks or a trailing comment:
        # each would become part of the value.
        assert value == value.strip(), f"{where}: blanks around the value of {key}"
        assert not value.startswith(('"', "'")), f"{where}: quotes would be part of {key}"
        assert "#" not in value, f"{where}: '#' is not a comment here, it is part of {key}"
        lines.append(EnvLine(key, value, number, " ".join(comment)))
        comment = []
    keys = [entry.key for entry in lines]
    assert len(keys) == len(set(keys)), f"{path.name} sets a variable twice"
    return lines
