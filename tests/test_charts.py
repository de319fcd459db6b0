"""Render the Helm charts under charts/ with Helm's own engine and check the manifests.

The engine is helm-python-sdk (import name helm_python), a locked dev dependency: Helm's Go SDK
in a bundled shared library, so no `helm` binary and no network are needed. The app chart's
prompts ConfigMap is built from the repo's prompts/ through the chart's `prompts` symlink.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import pytest
import yaml

from core.prompts import PipelineKnobs, load_yaml_model

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
    "CONVENE_STREAM_TOKEN_SECRET",  # shared by every pod: a webhook and its stream may differ
]
REMOTE: dict[str, Any] = {"whisperRemote": {"enabled": True}}


class RenderError(Exception):
    """A chart failed to render (`fail`, `required`, a template error)."""


Rendered = dict[str, str]  # "<chart>/templates/<file>" -> text


def render(chart: Path, values: dict[str, Any], name: str) -> Rendered:
    """`helm template <name> <chart> --namespace meetings` with `values`, by Helm's engine."""
    try:
        with helm_python.Chart.load(str(chart)) as loaded:
            return dict(loaded.render(values, name=name, namespace=NAMESPACE, is_install=True))
    except helm_python.HelmError as exc:
        raise RenderError(str(exc)) from exc


def repo_prompts() -> dict[str, str]:
    """prompts/*.yaml, file name -> exact text."""
    files = {path.name: path.read_text(encoding="utf-8") for path in REPO.glob("prompts/*.yaml")}
    assert files
    return files


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
    chart: Path, values: dict[str, Any] | None = None, name: str = "convene"
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


def test_app_defaults() -> None:
    docs = manifests(APP)
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


def test_app_env_and_home_volume() -> None:
    docs = manifests(APP)
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


def test_app_prompts_configmap_is_the_repo_prompts() -> None:
    """The ConfigMap holds every prompts/*.yaml byte for byte (read through the chart's symlink)."""
    assert (APP / "prompts").is_symlink()
    assert (APP / "prompts").resolve() == REPO / "prompts"
    assert set(chart_values(APP)["prompts"]) == {"enabled", "overrides"}  # no copy of the files

    docs = manifests(APP)
    deployment = only(docs, "Deployment")
    configmap = only(docs, "ConfigMap")
    assert configmap["data"] == repo_prompts()
    # By default the app runs Whisper in-process.
    assert yaml.safe_load(configmap["data"]["pipeline.yaml"])["stt"]["provider"] == "whisper-local"

    env = env_of(container(deployment))
    assert env["CONVENE_PROMPTS_DIR"]["value"] == "/etc/convene/prompts"
    mounts = {m["name"]: m for m in container(deployment)["volumeMounts"]}
    assert mounts["prompts"] == {
        "name": "prompts",
        "mountPath": "/etc/convene/prompts",
        "readOnly": True,
    }
    assert volumes_of(deployment)["prompts"]["configMap"]["name"] == configmap["metadata"]["name"]


def test_app_prompts_whisper_remote_sets_the_provider() -> None:
    """whisperRemote.enabled: pipeline.yaml's stt.provider only, set on the parsed file."""
    data = only(manifests(APP, REMOTE), "ConfigMap")["data"]
    files = repo_prompts()
    assert {k: v for k, v in data.items() if k != "pipeline.yaml"} == {
        k: v for k, v in files.items() if k != "pipeline.yaml"
    }
    pipeline = yaml.safe_load(data["pipeline.yaml"])
    expected = yaml.safe_load(files["pipeline.yaml"])
    expected["stt"]["provider"] = "whisper-remote"
    assert pipeline == expected


def test_app_prompts_whisper_remote_pipeline_loads(tmp_path: Path) -> None:
    """The re-serialised pipeline.yaml still passes the app's own validation."""
    data = only(manifests(APP, REMOTE), "ConfigMap")["data"]
    (tmp_path / "pipeline.yaml").write_text(data["pipeline.yaml"], encoding="utf-8")
    knobs = load_yaml_model(tmp_path / "pipeline.yaml", PipelineKnobs)
    assert knobs.stt.provider == "whisper-remote"
    local = load_yaml_model(REPO / "prompts" / "pipeline.yaml", PipelineKnobs).model_dump()
    local["stt"]["provider"] = "whisper-remote"
    assert knobs.model_dump() == local


def test_app_prompt_overrides_replace_whole_files() -> None:
    agent = "name: Someone Else\n"
    values = {"prompts": {"overrides": {"agent.yaml": agent, "extra.yaml": "a: 1\n"}}}
    docs = manifests(APP, values)
    data = only(docs, "ConfigMap")["data"]
    assert data == {**repo_prompts(), "agent.yaml": agent, "extra.yaml": "a: 1\n"}

    # An override of pipeline.yaml gets the whisper-remote provider too.
    pipeline = "stt:\n  language: de\n"
    values = {**REMOTE, "prompts": {"overrides": {"pipeline.yaml": pipeline}}}
    data = only(manifests(APP, values), "ConfigMap")["data"]
    assert yaml.safe_load(data["pipeline.yaml"]) == {
        "stt": {"language": "de", "provider": "whisper-remote"}
    }

    # Editing a prompt changes the pod template, so the pods roll.
    def checksum(docs: list[dict[str, Any]]) -> str:
        annotations = only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        value = annotations["checksum/prompts"]
        assert isinstance(value, str)
        return value

    assert checksum(docs) != checksum(manifests(APP))
    assert checksum(manifests(APP, REMOTE)) != checksum(manifests(APP))


def test_app_prompts_reject_files_outside_overrides() -> None:
    # The old layout (prompts.<file>) must not be silently ignored.
    with pytest.raises(RenderError, match="prompts.overrides"):
        render(APP, {"prompts": {"agent.yaml": "name: X\n"}}, "convene")


def test_app_prompts_disabled_uses_the_image_prompts() -> None:
    bare = manifests(APP, {"prompts": {"enabled": False}})
    assert "ConfigMap" not in kinds(bare)
    bare_deployment = only(bare, "Deployment")
    assert "CONVENE_PROMPTS_DIR" not in env_of(container(bare_deployment))
    assert "prompts" not in volumes_of(bare_deployment)
    assert "annotations" not in bare_deployment["spec"]["template"]["metadata"]


def test_packaged_chart_carries_the_prompts(tmp_path: Path) -> None:
    """`helm package` follows the symlink: the archive holds the files, and renders the same."""
    archive = Path(helm_python.package(str(APP), destination=str(tmp_path)))
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for name, text in repo_prompts().items():
            member = members[f"convene/prompts/{name}"]
            assert member.isfile()
            handle = tar.extractfile(member)
            assert handle is not None
            assert handle.read().decode("utf-8") == text
    assert "convene/prompts/README.md" not in members  # .helmignore
    rendered = render(archive, {}, "convene")
    data = yaml.safe_load(rendered["convene/templates/configmap.yaml"])["data"]
    assert data == repo_prompts()


def test_app_secrets_come_from_the_existing_secret() -> None:
    docs = manifests(APP)
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


def test_app_refuses_secrets_in_plain_env() -> None:
    with pytest.raises(RenderError, match="TWILIO_AUTH_TOKEN is a secret"):
        render(APP, {"env": {"TWILIO_AUTH_TOKEN": "not-in-values"}}, "convene")


def test_app_secret_name_and_extra_env_from() -> None:
    values = {
        "existingSecret": "prod-convene",
        "extraEnvFrom": [{"secretRef": {"name": "more-keys"}}],
    }
    ctr = container(only(manifests(APP, values), "Deployment"))
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in ctr["env"] if "valueFrom" in e}
    assert refs == {"prod-convene"}
    assert ctr["envFrom"] == [{"secretRef": {"name": "more-keys"}}]

    ctr = container(only(manifests(APP, {"existingSecret": ""}), "Deployment"))
    assert not any("valueFrom" in entry for entry in ctr["env"])


def test_app_features_enabled() -> None:
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
    docs = manifests(APP, values)
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
    # On the calls each pod streams (a custom metric from prometheus-adapter), not on CPU.
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "convene_active_calls"},
                "target": {"type": "AverageValue", "averageValue": "3"},
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


def test_app_memory_target_and_emptydir_limit() -> None:
    values = {
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
        "persistence": {"enabled": False, "emptyDirSizeLimit": "2Gi"},
    }
    docs = manifests(APP, values)
    metrics = only(docs, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Pods", "Resource"]
    assert metrics[1]["resource"]["name"] == "memory"
    assert metrics[1]["resource"]["target"]["averageUtilization"] == 80
    home = volumes_of(only(docs, "Deployment"))["home"]
    assert home == {"name": "home", "emptyDir": {"sizeLimit": "2Gi"}}


def test_app_scales_on_active_calls_scraped_from_each_pod() -> None:
    """The HPA's custom metric, and how Prometheus gets it: a ServiceMonitor on each pod's
    /metrics with a read token from a Secret (or the pods' scrape annotations)."""
    values = {
        "autoscaling": {
            "enabled": True,
            "activeCalls": {"targetPerPod": "5"},
            "targetCPUUtilizationPercentage": 90,
        },
        "metrics": {
            "serviceMonitor": {
                "enabled": True,
                "tokenSecret": {"name": "prometheus-convene"},
                "labels": {"release": "kube-prometheus-stack"},
            },
            "scrapeAnnotations": True,
        },
    }
    docs = manifests(APP, values)
    metrics = only(docs, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metrics[0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "5"}
    assert metrics[1]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 90},
    }
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = only(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (service["spec"]["ports"][0]["name"], "/metrics")
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "prometheus-convene", "key": "token"},
    }
    deployment = only(docs, "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "8000"
    # /metrics keeps its token unless metrics.public says otherwise.
    assert "CONVENE_METRICS_PUBLIC" not in env_of(container(deployment))
    # A media stream is one websocket: it stays on its pod; no affinity is needed for it.
    assert service["spec"]["sessionAffinity"] == "None"
    notes = render(APP, values, "convene")["convene/templates/NOTES.txt"]
    assert "aiming at 5 calls per pod" in notes and "CONVENE_STREAM_TOKEN_SECRET" in notes


def test_app_public_metrics_and_a_monitor_without_a_token() -> None:
    with pytest.raises(RenderError, match="tokenSecret"):
        render(APP, {"metrics": {"serviceMonitor": {"enabled": True}}}, "convene")
    values = {"metrics": {"public": True, "serviceMonitor": {"enabled": True}}}
    docs = manifests(APP, values)
    [endpoint] = only(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in endpoint
    env = env_of(container(only(docs, "Deployment")))
    assert env["CONVENE_METRICS_PUBLIC"]["value"] == "true"


def test_app_existing_claim() -> None:
    docs = manifests(APP, {"persistence": {"existingClaim": "convene-data"}})
    assert "PersistentVolumeClaim" not in kinds(docs)
    home = volumes_of(only(docs, "Deployment"))["home"]
    assert home["persistentVolumeClaim"] == {"claimName": "convene-data"}


def test_app_names() -> None:
    deployment = only(manifests(APP, name="prod"), "Deployment")
    assert deployment["metadata"]["name"] == "prod-convene"
    override = {"fullnameOverride": "meeting-bot"}
    deployment = only(manifests(APP, override, name="prod"), "Deployment")
    assert deployment["metadata"]["name"] == "meeting-bot"
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "prod"
    assert labels["helm.sh/chart"] == "convene-0.1.0"


# ---------------------------------------------------------------- app -> stt wiring


def whisper_url(docs: list[dict[str, Any]]) -> str:
    value = env_of(container(only(docs, "Deployment")))["CONVENE_WHISPER_REMOTE_URL"]["value"]
    assert isinstance(value, str)
    return value


def test_whisper_remote_url_points_at_the_stt_service() -> None:
    app_docs = manifests(APP, REMOTE, name="convene")
    stt_docs = manifests(STT, name="convene-stt")
    service = only(stt_docs, "Service")
    url = urlsplit(whisper_url(app_docs))
    assert url.scheme == "http"
    assert url.hostname == service["metadata"]["name"] == "convene-stt"
    assert url.port == service["spec"]["ports"][0]["port"] == 8000
    model = env_of(container(only(app_docs, "Deployment")))["CONVENE_WHISPER_REMOTE_MODEL"]
    stt_env = env_of(container(only(stt_docs, "Deployment")))
    assert model["value"] == stt_env["WHISPER__MODEL"]["value"]

    # Another release name: still "<release>-stt", matching the stt chart installed that way.
    app_docs = manifests(APP, REMOTE, name="prod")
    stt_docs = manifests(STT, name="prod-stt")
    assert urlsplit(whisper_url(app_docs)).hostname == only(stt_docs, "Service")["metadata"]["name"]


def test_whisper_remote_overrides() -> None:
    values = {
        "whisperRemote": {
            "enabled": True,
            "serviceName": "whisper",
            "namespace": "gpu",
            "port": 9000,
        }
    }
    assert whisper_url(manifests(APP, values)) == "http://whisper.gpu.svc:9000"
    values = {"whisperRemote": {"enabled": True, "url": "http://spark.lan:8000/"}}
    assert whisper_url(manifests(APP, values)) == "http://spark.lan:8000"
    docs = manifests(APP, {"whisperRemote": {"enabled": False}})
    env = env_of(container(only(docs, "Deployment")))
    assert "CONVENE_WHISPER_REMOTE_URL" not in env
    assert "CONVENE_WHISPER_REMOTE_MODEL" not in env


# ---------------------------------------------------------------- the stt chart


def test_stt_defaults() -> None:
    docs = manifests(STT, name="convene-stt")
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


def test_stt_host_path_other_gpu_and_image() -> None:
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
    docs = manifests(STT, values, name="stt")
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


def test_stt_rejects_an_unknown_cache_type() -> None:
    with pytest.raises(RenderError, match="modelCache.type"):
        render(STT, {"modelCache": {"type": "nfs"}}, "stt")


def test_notes_render() -> None:
    app_notes = render(APP, REMOTE, "convene")["convene/templates/NOTES.txt"]
    assert "publicHost is empty" in app_notes
    assert "http://convene-stt:8000" in app_notes
    assert "kubectl -n meetings create secret generic convene-secrets" in app_notes
    stt_notes = render(STT, {}, "convene-stt")["stt/templates/NOTES.txt"]
    assert "http://convene-stt.meetings.svc:8000" in stt_notes
    assert "nvidia.com/gpu.product=NVIDIA-GB10" in stt_notes


@pytest.mark.parametrize("chart", [APP, STT], ids=["convene", "stt"])
def test_helm_lint(chart: Path) -> None:
    report = helm_python.lint(str(chart), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report
