"""The Kubernetes manifests validate offline against a pinned Kubernetes release (GKE's
ManagedCertificate against the schema carried in schemas/) and keep the properties the
service depends on: one pod, its dump on a persistent volume, probes on the served port,
time to write the dump before the kill, and no root."""

import json
from pathlib import PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from ome.config import Settings, load_settings
from tests.deploy.sources import ROOT, final_stage, image_env, instructions, manifests, resource

# The cluster version the manifests are checked against; GKE's regular channel runs it.
KUBERNETES_VERSION = "1.33.0"
MANAGED_CERTIFICATE_SCHEMA = ROOT / "tests" / "deploy" / "schemas" / "managedcertificate.json"
# Writing a large dump and closing the executioner client happen after the
# request-draining timeout, so the kubelet must wait at least this much longer.
DUMP_MARGIN_SECONDS = 10


def _pod() -> dict[str, Any]:
    spec: dict[str, Any] = resource("Deployment")["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers = _pod()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _container_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in _container().get("env", [])}


def _ids() -> list[str]:
    return [f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in manifests()]


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=_ids())
def test_manifest_validates_offline(name: str, doc: dict[str, Any]) -> None:
    if doc["kind"] == "ManagedCertificate":
        schema = json.loads(MANAGED_CERTIFICATE_SCHEMA.read_text(encoding="utf-8"))
        jsonschema.validate(doc, schema)
    else:
        # strict: an unknown or misspelt field fails instead of being ignored.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_an_ingress_of_a_removed_api_version_is_refused() -> None:
    old = resource("Ingress") | {"apiVersion": "extensions/v1beta1"}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(old, KUBERNETES_VERSION, strict=True)


def test_one_pod_at_a_time() -> None:
    spec = resource("Deployment")["spec"]
    assert spec["replicas"] == 1
    # A rolling update would run the new pod beside the old one, both owning the dumpfile.
    assert spec["strategy"] == {"type": "Recreate"}


def test_dumpfile_lives_on_the_persistent_volume() -> None:
    settings = load_settings([], environ=image_env() | _container_env())
    mounts = {mount["name"]: mount for mount in _container()["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in _pod()["volumes"]}
    claims = {
        volumes[name]["persistentVolumeClaim"]["claimName"]: mount
        for name, mount in mounts.items()
        if "persistentVolumeClaim" in volumes[name]
    }
    claim = resource("PersistentVolumeClaim")
    mount = claims[claim["metadata"]["name"]]
    assert mount["mountPath"] == "/data"
    assert not mount.get("readOnly", False)
    assert PurePosixPath(str(settings.dumpfile)).parent == PurePosixPath("/data")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_root_filesystem_is_read_only_and_the_pod_never_runs_as_root() -> None:
    pod_security = _pod()["securityContext"]
    container_security = _container()["securityContext"]
    assert container_security["readOnlyRootFilesystem"] is True
    assert container_security["allowPrivilegeEscalation"] is False
    assert pod_security["runAsNonRoot"] is True
    image_user = instructions(final_stage(), "USER")[-1].value[0]
    assert f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}" == image_user
    # fsGroup makes a freshly provisioned volume writable by that user.
    assert pod_security["fsGroup"] == pod_security["runAsGroup"]


@pytest.mark.parametrize(
    ("probe", "path"),
    [("startupProbe", "/"), ("readinessProbe", "/ready"), ("livenessProbe", "/")],
)
def test_probes_ask_the_served_port_for_health(probe: str, path: str) -> None:
    served = load_settings([], environ=image_env() | _container_env()).port
    (port,) = (p["containerPort"] for p in _container()["ports"])
    get = _container()[probe]["httpGet"]
    assert get["path"] == path
    assert get["port"] == port == served == Settings().port
    assert get.get("scheme", "HTTP") == "HTTP"


def test_listens_on_every_pod_interface_in_plain_http() -> None:
    settings = load_settings([], environ=image_env() | _container_env())
    assert settings.listen == "0.0.0.0"
    assert settings.force_no_tls


def test_grace_period_leaves_time_to_drain_and_write_the_dump() -> None:
    # Imported here: the entry point pulls in the whole service, which the other checks
    # of this file do not need.
    import ome.__main__

    grace = _pod()["terminationGracePeriodSeconds"]
    drain = load_settings([], environ=image_env() | _container_env()).drain_delay
    assert drain > 0, "without a drain delay the port closes before the endpoints are updated"
    assert grace >= drain + ome.__main__.SHUTDOWN_TIMEOUT + DUMP_MARGIN_SECONDS


def test_resources_are_requested_and_limited() -> None:
    resources = _container()["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"]
        assert kind in resources["limits"]


def test_environment_comes_from_the_ome_env_config_map() -> None:
    assert _container()["envFrom"] == [{"configMapRef": {"name": "ome-env"}}]


def test_node_port_service_selects_the_pod() -> None:
    service = resource("Service", "ome-node-service")
    labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["nodePort"]) == (8989, 8989, 32000)
    assert port["targetPort"] == _container()["ports"][0]["containerPort"]


def test_ingress_routes_everything_to_the_service_with_the_static_ip_and_certificate() -> None:
    ingress = resource("Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.global-static-ip-name"] == "ome-ingress-ip"
    certificate = resource("ManagedCertificate")["metadata"]["name"]
    assert annotations["networking.gke.io/managed-certificates"] == certificate == "ome-cert"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = resource("Service", backend["name"])
    assert backend["port"]["number"] in {port["port"] for port in service["spec"]["ports"]}
    assert backend == {"name": "ome-node-service", "port": {"number": 8989}}
