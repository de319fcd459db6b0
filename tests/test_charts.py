"""Render the Helm charts under charts/ and check the manifests that matter.

Renderers, each test runs with every one available:
  fallback   charts/render_check.py, a pure-Python subset of Go templates + Sprig: always runs
             (CI included), so the charts are checked without any Helm install.
  helm-sdk   the real Helm engine (Helm's Go SDK in a shared library, `pip install
             helm-python-sdk`,
import name helm_python); skipped when not installed.
  helm-cli   `helm template` when a `helm` binary is on PATH; skipped otherwise.
When a real renderer is present, the fallback's output is also compared with it, and the
charts are linted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHARTS = REPO / "charts"
APP = CHARTS / "convene"
STT = CHARTS / "stt"
NAMESPACE = "meetings"
SECRET_KEYS = [
    "DATABASE_URL",
    "REDIS_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "ANTHROPIC_API_KEY",
    "DEEPGRAM_API_KEY",
    "CARTESIA_API_KEY",
    "ELEVENLABS_API_KEY",
]


def _load_render_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_check", CHARTS / "render_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rc = _load_render_check()

try:
    import helm_python
except (ImportError, OSError):  # not installed, or its native library does not load here
    helm_python = None

HELM_BIN = shutil.which("helm")


class RenderError(Exception):
    """A chart failed to render (`fail`, `required`, a template error), whatever the renderer."""


Rendered = dict[str, str]  # "<chart>/templates/<file>" -> text
Renderer = Callable[[Path, dict[str, Any], str], Rendered]


def render_fallback(chart: Path, values: dict[str, Any], name: str) -> Rendered:
    try:
        rendered: Rendered = rc.render_chart(chart, values, name=name, namespace=NAMESPACE)
    except rc.TemplateError as exc:
        raise RenderError(str(exc)) from exc
    return rendered


def render_helm_sdk(chart: Path, values: dict[str, Any], name: str) -> Rendered:
    assert helm_python is not None
    try:
        with helm_python.Chart.load(str(chart)) as loaded:
            return dict(loaded.render(values, name=name, namespace=NAMESPACE, is_install=True))
    except helm_python.HelmError as exc:
        raise RenderError(str(exc)) from exc


def render_helm_cli(
    chart: Path, values: dict[str, Any], name: str, helm: str | None = HELM_BIN
) -> Rendered:
    assert helm is not None
    proc = subprocess.run(
        [helm, "template", name, str(chart), "--namespace", NAMESPACE, "--values", "-"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    rendered: Rendered = {}
    for chunk in re.split(r"^---\n", proc.stdout, flags=re.M):
        head, _, body = chunk.partition("\n")
        if head.startswith("# Source: "):
            source = head.removeprefix("# Source: ")
            rendered[source] = rendered.get(source, "") + "---\n" + body
    return rendered


# Only the renderers present run (helm-python-sdk is a locked dev dependency, so CI has Helm's
# real engine; a `helm` binary on PATH is used too when there is one). No skips.
REMOTE: dict[str, Any] = {"whisperRemote": {"enabled": True}}
RENDERERS = [pytest.param(render_fallback, id="fallback")]
if helm_python is not None:
    RENDERERS.append(pytest.param(render_helm_sdk, id="helm-sdk"))
if HELM_BIN is not None:
    RENDERERS.append(pytest.param(render_helm_cli, id="helm-cli"))
REAL_RENDERERS = RENDERERS[1:]


@pytest.fixture(params=RENDERERS)
def render(request: pytest.FixtureRequest) -> Renderer:
    renderer: Renderer = request.param
    return renderer


# ---------------------------------------------------------------- helpers


def documents(rendered: Rendered) -> list[dict[str, Any]]:
    """Every Kubernetes object rendered, parsed."""
    docs: list[dict[str, Any]] = []
    for source, text in sorted(rendered.items()):
        if not source.endswith((".yaml", ".yml")) or "/_" in source:
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{source}: not a mapping"
            assert doc.get("apiVersion") and doc.get("kind"), f"{source}: no apiVersion/kind"
            docs.append(doc)
    return docs


def manifests(
    render: Renderer, chart: Path, values: dict[str, Any] | None = None, name: str = "convene"
) -> list[dict[str, Any]]:
    return documents(render(chart, values or {}, name))


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {doc["kind"] for doc in docs}


def container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def env_of(ctr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = ctr.get("env") or []
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {entry["name"]: entry for entry in entries}


def volumes_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes") or []}


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


def chart_values(chart: Path) -> dict[str, Any]:
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert isinstance(values, dict)
    return values


# ---------------------------------------------------------------- the app chart


def test_app_defaults(render: Renderer) -> None:
    docs = manifests(render, APP)
    assert kinds(docs) == {
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "ServiceAccount",
    }
    deployment = only(docs, "Deployment")
    assert deployment["metadata"]["name"] == "convene"
    assert deployment["spec"]["replicas"] == 1
    # A ReadWriteOnce claim cannot be shared by an old and a new pod on two nodes.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    ctr = container(deployment)
    assert ctr["image"] == "convene:0.1.0"
    assert ctr["command"] == ["convene", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert ctr["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert ctr["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert ctr["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a CPU request
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    service = only(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == selector
    account = only(docs, "ServiceAccount")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )


def test_app_env_and_home_volume(render: Renderer) -> None:
    docs = manifests(render, APP)
    deployment = only(docs, "Deployment")
    env = env_of(container(deployment))
    assert env["CONVENE_HOME"]["value"] == "/var/lib/convene"
    assert env["CONVENE_WHISPER_MODEL"]["value"] == "packaged:base"
    assert env["CONVENE_WRITER_BATCH"]["value"] == "50"  # env values are always strings
    assert "PUBLIC_HOST" not in env  # publicHost is empty by default

    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    assert mounts["home"]["mountPath"] == "/var/lib/convene"
    claim = only(docs, "PersistentVolumeClaim")
    assert volumes_of(deployment)["home"] == {
        "name": "home",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_app_prompts_configmap(render: Renderer) -> None:
    docs = manifests(render, APP)
    deployment = only(docs, "Deployment")
    configmap = only(docs, "ConfigMap")
    prompts = chart_values(APP)["prompts"]
    assert set(configmap["data"]) == set(prompts)
    for file_name, text in configmap["data"].items():
        assert file_name.endswith(".yaml")
        assert isinstance(yaml.safe_load(text), dict), file_name
        if file_name != "pipeline.yaml":
            assert text == prompts[file_name], file_name
    # By default the app runs Whisper in-process; whisperRemote.enabled switches the STT
    # provider to the stt chart's server.
    assert configmap["data"] == prompts
    assert yaml.safe_load(configmap["data"]["pipeline.yaml"])["stt"]["provider"] == "whisper-local"
    remote = only(manifests(render, APP, REMOTE), "ConfigMap")
    pipeline = remote["data"]["pipeline.yaml"]
    assert yaml.safe_load(pipeline)["stt"]["provider"] == "whisper-remote"
    assert pipeline == prompts["pipeline.yaml"].replace(
        "provider: whisper-local", "provider: whisper-remote"
    )

    env = env_of(container(deployment))
    assert env["CONVENE_PROMPTS_DIR"]["value"] == "/etc/convene/prompts"
    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    assert mounts["prompts"] == {
        "name": "prompts",
        "mountPath": "/etc/convene/prompts",
        "readOnly": True,
    }
    assert volumes_of(deployment)["prompts"]["configMap"]["name"] == configmap["metadata"]["name"]

    # Editing a prompt changes the pod template, so the pods roll.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    edited = {"prompts": {**prompts, "agent.yaml": "name: Someone Else\n"}}
    edited_deployment = only(manifests(render, APP, edited), "Deployment")
    edited_annotations = edited_deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/prompts"] != edited_annotations["checksum/prompts"]

    # No prompts: no ConfigMap, and the image's bundled prompts are used.
    bare = manifests(render, APP, {"prompts": None})
    assert "ConfigMap" not in kinds(bare)
    bare_deployment = only(bare, "Deployment")
    assert "CONVENE_PROMPTS_DIR" not in env_of(container(bare_deployment))
    assert "prompts" not in volumes_of(bare_deployment)


def test_chart_prompts_cover_the_repo_prompts() -> None:
    """Every prompts/*.yaml the app reads must be in the ConfigMap that replaces the folder."""
    repo_files = {path.name for path in (REPO / "prompts").glob("*.yaml")}
    chart_files = set(chart_values(APP)["prompts"])
    missing = repo_files - chart_files
    assert not missing, (
        f"prompts/ has {sorted(missing)} that charts/convene/values.yaml lacks; run "
        "`python charts/render_check.py charts/convene --sync-prompts prompts`"
    )


def test_app_secrets_come_from_the_existing_secret(render: Renderer) -> None:
    docs = manifests(render, APP)
    assert "Secret" not in kinds(docs)
    env = env_of(container(only(docs, "Deployment")))
    for key in SECRET_KEYS:
        entry = env[key]
        assert "value" not in entry, f"{key} has a literal value"
        assert entry["valueFrom"] == {
            "secretKeyRef": {"name": "convene-secrets", "key": key, "optional": True}
        }
    # Nothing secret-looking anywhere in the output.
    for text in walk_strings(docs):
        for marker in ("sk-ant-", "postgresql://", "redis://", "ACxxxxxxxx"):
            assert marker not in text


def test_app_refuses_secrets_in_plain_env(render: Renderer) -> None:
    with pytest.raises(RenderError, match="TWILIO_AUTH_TOKEN is a secret"):
        render(APP, {"env": {"TWILIO_AUTH_TOKEN": "not-in-values"}}, "convene")


def test_app_secret_name_and_extra_env_from(render: Renderer) -> None:
    values = {
        "existingSecret": "prod-convene",
        "extraEnvFrom": [{"secretRef": {"name": "more-keys"}}],
    }
    ctr = container(only(manifests(render, APP, values), "Deployment"))
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in ctr["env"] if "valueFrom" in e}
    assert refs == {"prod-convene"}
    assert ctr["envFrom"] == [{"secretRef": {"name": "more-keys"}}]

    ctr = container(only(manifests(render, APP, {"existingSecret": ""}), "Deployment"))
    assert not any("valueFrom" in entry for entry in ctr["env"])


def test_app_features_enabled(render: Renderer) -> None:
    values = {
        "publicHost": "convene.example.com",
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "convene-tls"}],
        },
        "persistence": {"enabled": False},
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
    }
    docs = manifests(render, APP, values)
    assert kinds(docs) == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Service",
        "ServiceAccount",
    }
    deployment = only(docs, "Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert volumes_of(deployment)["home"] == {"name": "home", "emptyDir": {}}
    assert env_of(container(deployment))["PUBLIC_HOST"]["value"] == "convene.example.com"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64"}

    hpa = only(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600

    service = only(docs, "Service")
    ingress = only(docs, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"secretName": "convene-tls", "hosts": ["convene.example.com"]}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "convene.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/"
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"number": service["spec"]["ports"][0]["port"]},
    }
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"


def test_app_memory_target_and_emptydir_limit(render: Renderer) -> None:
    values = {
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
        "persistence": {"enabled": False, "emptyDirSizeLimit": "2Gi"},
    }
    docs = manifests(render, APP, values)
    metrics = only(docs, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics] == ["cpu", "memory"]
    assert metrics[1]["resource"]["target"]["averageUtilization"] == 80
    home = volumes_of(only(docs, "Deployment"))["home"]
    assert home == {"name": "home", "emptyDir": {"sizeLimit": "2Gi"}}


def test_app_existing_claim(render: Renderer) -> None:
    docs = manifests(render, APP, {"persistence": {"existingClaim": "convene-data"}})
    assert "PersistentVolumeClaim" not in kinds(docs)
    home = volumes_of(only(docs, "Deployment"))["home"]
    assert home["persistentVolumeClaim"] == {"claimName": "convene-data"}


def test_app_names(render: Renderer) -> None:
    deployment = only(manifests(render, APP, name="prod"), "Deployment")
    assert deployment["metadata"]["name"] == "prod-convene"
    override = {"fullnameOverride": "meeting-bot"}
    deployment = only(manifests(render, APP, override, name="prod"), "Deployment")
    assert deployment["metadata"]["name"] == "meeting-bot"
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "prod"
    assert labels["helm.sh/chart"] == "convene-0.1.0"


# ---------------------------------------------------------------- app -> stt wiring


def whisper_url(docs: list[dict[str, Any]]) -> str:
    value = env_of(container(only(docs, "Deployment")))["CONVENE_WHISPER_REMOTE_URL"]["value"]
    assert isinstance(value, str)
    return value


def test_whisper_remote_url_points_at_the_stt_service(render: Renderer) -> None:
    app_docs = manifests(render, APP, REMOTE, name="convene")
    stt_docs = manifests(render, STT, name="convene-stt")
    service = only(stt_docs, "Service")
    url = urlsplit(whisper_url(app_docs))
    assert url.scheme == "http"
    assert url.hostname == service["metadata"]["name"] == "convene-stt"
    assert url.port == service["spec"]["ports"][0]["port"] == 8000
    model = env_of(container(only(app_docs, "Deployment")))["CONVENE_WHISPER_REMOTE_MODEL"]
    stt_env = env_of(container(only(stt_docs, "Deployment")))
    assert model["value"] == stt_env["WHISPER__MODEL"]["value"]

    # Another release name: still "<release>-stt", matching the stt chart installed that way.
    app_docs = manifests(render, APP, REMOTE, name="prod")
    stt_docs = manifests(render, STT, name="prod-stt")
    assert urlsplit(whisper_url(app_docs)).hostname == only(stt_docs, "Service")["metadata"]["name"]


def test_whisper_remote_overrides(render: Renderer) -> None:
    values = {
        "whisperRemote": {
            "enabled": True,
            "serviceName": "whisper",
            "namespace": "gpu",
            "port": 9000,
        }
    }
    assert whisper_url(manifests(render, APP, values)) == "http://whisper.gpu.svc:9000"
    values = {"whisperRemote": {"enabled": True, "url": "http://spark.lan:8000/"}}
    assert whisper_url(manifests(render, APP, values)) == "http://spark.lan:8000"
    docs = manifests(render, APP, {"whisperRemote": {"enabled": False}})
    env = env_of(container(only(docs, "Deployment")))
    assert "CONVENE_WHISPER_REMOTE_URL" not in env
    assert "CONVENE_WHISPER_REMOTE_MODEL" not in env


# ---------------------------------------------------------------- the stt chart


def test_stt_defaults(render: Renderer) -> None:
    docs = manifests(render, STT, name="convene-stt")
    assert kinds(docs) == {"Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"}
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    ctr = container(deployment, "whisper")
    assert ctr["image"] == "ghcr.io/speaches-ai/speaches:latest-cuda"
    assert ctr["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert ctr["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-GB10"
    assert pod["nodeSelector"]["kubernetes.io/arch"] == "arm64"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert ctr[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert ctr["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]

    env = env_of(ctr)
    assert "large-v3-turbo" in env["WHISPER__MODEL"]["value"]
    cache = "/home/ubuntu/.cache/huggingface/hub"
    assert env["HF_HUB_CACHE"]["value"] == cache
    assert env["WHISPER__INFERENCE_DEVICE"]["value"] == "cuda"
    assert {"name": "models", "mountPath": cache} in ctr["volumeMounts"]
    claim = only(docs, "PersistentVolumeClaim")
    assert volumes_of(deployment)["models"]["persistentVolumeClaim"] == {
        "claimName": claim["metadata"]["name"]
    }
    assert pod["securityContext"] == {"fsGroup": 1000}

    (preload,) = pod["initContainers"]
    assert preload["image"] == ctr["image"]
    assert env_of(preload)["WHISPER__MODEL"] == env["WHISPER__MODEL"]
    assert {"name": "models", "mountPath": cache} in preload["volumeMounts"]

    service = only(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_stt_host_path_other_gpu_and_image(render: Renderer) -> None:
    values = {
        "image": {"repository": "registry.lan/whisper", "tag": "1.0-arm64"},
        "modelCache": {"type": "hostPath", "mountPath": "/models"},
        "model": {"name": "Systran/faster-whisper-small", "preload": False},
        # Helm merges maps: null removes a default key.
        "nodeSelector": {
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "kubernetes.io/arch": None,
        },
        "gpu": {"count": 2},
        "runtimeClassName": "nvidia",
        "resources": {"requests": None, "limits": None},
        "args": ["--port", "8000"],
    }
    docs = manifests(render, STT, values, name="stt")
    assert kinds(docs) == {"Deployment", "Service", "ServiceAccount"}
    deployment = only(docs, "Deployment")
    assert deployment["metadata"]["name"] == "stt"
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    ctr = container(deployment)
    assert ctr["image"] == "registry.lan/whisper:1.0-arm64"
    assert ctr["args"] == ["--port", "8000"]
    assert ctr["resources"] == {"requests": {"nvidia.com/gpu": 2}, "limits": {"nvidia.com/gpu": 2}}
    assert env_of(ctr)["HF_HUB_CACHE"]["value"] == "/models"
    assert volumes_of(deployment)["models"]["hostPath"] == {
        "path": "/var/lib/convene-stt/models",
        "type": "DirectoryOrCreate",
    }


def test_stt_rejects_an_unknown_cache_type(render: Renderer) -> None:
    with pytest.raises(RenderError, match="modelCache.type"):
        render(STT, {"modelCache": {"type": "nfs"}}, "stt")


def test_notes_render() -> None:
    app_notes = render_fallback(APP, REMOTE, "convene")["convene/templates/NOTES.txt"]
    assert "publicHost is empty" in app_notes
    assert "http://convene-stt:8000" in app_notes
    assert "kubectl -n meetings create secret generic convene-secrets" in app_notes
    stt_notes = render_fallback(STT, {}, "convene-stt")["stt/templates/NOTES.txt"]
    assert "http://convene-stt.meetings.svc:8000" in stt_notes
    assert "nvidia.com/gpu.product=NVIDIA-GB10" in stt_notes


# ---------------------------------------------------------------- fallback vs the real engine

VALUE_SETS: list[tuple[Path, str, dict[str, Any]]] = [
    (APP, "convene", {}),
    (APP, "prod", {"prompts": None, "existingSecret": "", "whisperRemote": {"enabled": False}}),
    (
        APP,
        "convene",
        {
            "publicHost": "convene.example.com",
            "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 75},
            "ingress": {"enabled": True, "tls": [{"secretName": "t", "hosts": ["a.example"]}]},
            "persistence": {"enabled": False, "emptyDirSizeLimit": "1Gi"},
            "podAnnotations": {"a": "b"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "extraEnv": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
            ],
            "whisperRemote": {"namespace": "gpu"},
        },
    ),
    (STT, "convene-stt", {}),
    (
        STT,
        "stt",
        {"modelCache": {"type": "emptyDir"}, "command": ["serve"], "podAnnotations": {"x": "y"}},
    ),
]


@pytest.mark.parametrize("real", REAL_RENDERERS)
@pytest.mark.parametrize(("chart", "name", "values"), VALUE_SETS)
def test_fallback_matches_real_helm(
    real: Renderer, chart: Path, name: str, values: dict[str, Any]
) -> None:
    expected = real(chart, values, name)
    got = render_fallback(chart, values, name)
    for source, text in expected.items():
        if source.endswith("NOTES.txt"):
            assert got[source].strip() == text.strip()
            continue
        assert [d for d in yaml.safe_load_all(got[source]) if d] == [
            d for d in yaml.safe_load_all(text) if d
        ], source
    rendered_sources = {s for s, t in got.items() if t.strip() and not s.endswith("NOTES.txt")}
    assert rendered_sources <= set(expected)


@pytest.mark.skipif(
    helm_python is None and not os.environ.get("CI"), reason="pip install helm-python-sdk"
)
@pytest.mark.parametrize("chart", [APP, STT], ids=["convene", "stt"])
def test_helm_lint(chart: Path) -> None:
    assert helm_python is not None
    report = helm_python.lint(str(chart), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


# ---------------------------------------------------------------- the fallback engine itself

# (template, values, expected output): real Helm semantics, checked against Helm when present.
ENGINE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ('{{ $d := dict "b" 2 }}{{ $_ := set $d "a" 1 }}{{ $d.a }}{{ $d.b }}', {}, "12"),
    ("a {{- ` b ` -}} c", {}, "a b c"),
    (
        "{{ .Values.n }} {{ .Values.f }} {{ .Values.big }}",
        {"n": 3, "f": 0.5, "big": 1000000},
        "3 0.5 1e+06",
    ),
    ('{{ printf "%s-%v" "a" .Values.n }}', {"n": 8000}, "a-8000"),
    ("[{{ .Values.missing }}]", {}, "[]"),
    ('{{ default "d" .Values.e }} {{ default "d" .Values.s }}', {"e": "", "s": "x"}, "d x"),
    (
        "{{ .Values.s | quote }} {{ quote .Values.n }}",
        {"s": 'say "hi"', "n": 2},
        '"say \\"hi\\"" "2"',
    ),
    ('{{ "abcdef" | trunc 3 }} {{ "a-" | trimSuffix "-" }}', {}, "abc a"),
    (
        "{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}",
        {"m": {"b": 2, "a": 1}},
        "a=1;b=2;",
    ),
    ("{{ range .Values.l }}{{ . }}{{ else }}none{{ end }}", {"l": []}, "none"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", {}, "2"),
    ("{{ with .Values.m }}{{ .a }}{{ else }}no{{ end }}", {"m": {"a": "in"}}, "in"),
    (
        "{{ if and .Values.a (not .Values.b) }}y{{ else if .Values.b }}b{{ else }}n{{ end }}",
        {"a": 1},
        "y",
    ),
    ("{{ or .Values.a .Values.b }} {{ and 1 0 }}", {"b": "x"}, "x 0"),
    (
        "{{ toYaml .Values.m | nindent 2 }}",
        {"m": {"b": [1, "two"], "a": True}},
        "\n  a: true\n  b:\n  - 1\n  - two",
    ),
    (
        '{{ has "x" .Values.l }} {{ contains "ell" "hello" }} {{ eq .Values.n 2.0 }}',
        {"l": ["x"], "n": 2},
        "true true true",
    ),
    ('{{ "a+b" | replace "+" "_" }} {{ "abc" | sha256sum | trunc 8 }}', {}, "a_b ba7816bf"),
]


def _engine_chart(tmp_path: Path, template: str) -> Path:
    chart = tmp_path / "enginecase"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: enginecase\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("{}\n")
    (chart / "templates" / "out.txt").write_text(template)
    return chart


@pytest.mark.parametrize(("template", "values", "expected"), ENGINE_CASES)
def test_engine_cases(tmp_path: Path, template: str, values: dict[str, Any], expected: str) -> None:
    chart = _engine_chart(tmp_path, template)
    assert render_fallback(chart, values, "r")["enginecase/templates/out.txt"] == expected
    if helm_python is not None:
        assert render_helm_sdk(chart, values, "r")["enginecase/templates/out.txt"] == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Values.missing.deeper }}", "nil pointer"),
        ('{{ required "need x" .Values.x }}', "need x"),
        ('{{ fail "stop" }}', "stop"),
        ('{{ include "nope" . }}', "nope"),
        ("{{ if true }}open", "end"),
        ("{{ lookup 1 }}", "lookup"),
    ],
)
def test_engine_errors(tmp_path: Path, template: str, message: str) -> None:
    chart = _engine_chart(tmp_path, template)
    with pytest.raises(RenderError, match=message):
        render_fallback(chart, {}, "r")


def test_render_check_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert rc._main([str(STT), "--name", "convene-stt", "--namespace", NAMESPACE]) == 0
    out = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {d["kind"] for d in docs} == {
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "ServiceAccount",
    }
    assert "# Source: stt/templates/service.yaml" in out


def test_sync_prompts_rewrites_only_the_prompts_block(tmp_path: Path) -> None:
    prompts_dir = tmp_path / "prompts"
    prompts_dir.mkdir()
    (prompts_dir / "agent.yaml").write_text("name: Convene\n\naliases: []\n")
    (prompts_dir / "pipeline.yaml").write_text("stt:\n  provider: whisper-local\n")
    (prompts_dir / "README.md").write_text("not a prompt\n")
    values_copy = tmp_path / "values.yaml"
    values_copy.write_text((APP / "values.yaml").read_text())
    rc.sync_prompts(values_copy, prompts_dir)
    synced = yaml.safe_load(values_copy.read_text())
    assert synced["prompts"] == {
        "agent.yaml": "name: Convene\n\naliases: []\n",
        "pipeline.yaml": "stt:\n  provider: whisper-local\n",
    }
    assert {**synced, "prompts": None} == {**chart_values(APP), "prompts": None}
    assert values_copy.read_text().startswith((APP / "values.yaml").read_text()[:200])
