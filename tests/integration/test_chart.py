"""Offline validation of charts/orate and skaffold.yaml: helm lint --strict and helm template over five
value sets; every rendered object against Kubernetes' schemas (kubernetes-validate --strict) or its CRD
(tests/fixtures/k8s/crds); checkov; the metrics the alerts and dashboard name; the chart's model list
against the embedded stack's. Each check is also shown failing on a broken value set."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared.serving.deployments import DeploymentsFile

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "orate"
FIXTURES = ROOT / "tests" / "fixtures" / "k8s"
KUBERNETES_VERSION = "1.33.0"
VALUE_SETS = {
    "defaults": [],
    "gpu": ["ci/gpu-values.yaml"],
    "ray-only": ["ci/ray-only-values.yaml"],
    "external": ["ci/external-values.yaml"],
    "minimal-cpu": ["ci/minimal-cpu-values.yaml"],
}
# Failed checkov checks accepted, with why; any other failed check fails the test (checkov gives no
# severities offline, so every check counts, not only the high ones).
CHECKOV_ACCEPTED = {
    "CKV_K8S_15": "pull policy IfNotPresent: image tags are immutable per build (skaffold deploys digests)",
    "CKV_K8S_43": "images by tag: skaffold and CD pipelines substitute digests at deploy time",
    "CKV_K8S_35": "secrets as env vars: the pydantic settings read ORATE_* env vars (no secrets_dir yet)",
}
# Kinds with neither a Kubernetes schema nor a CRD fixture.
UNVALIDATED_KINDS = {"TriggerAuthentication": "KEDA's TriggerAuthentication CRD is not in tests/fixtures/k8s"}
CRD_FILES = {
    ("ray.io/v1", "RayService"): "ray.io_rayservices.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
# Metric names from outside the repository that the alerts and dashboard use, with their documentation.
TRITON_METRICS = {  # https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/metrics.html
    "nv_inference_queue_duration_us",
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_pending_request_count",
    "nv_inference_request_duration_us",
    "nv_inference_count",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_utilization",
}
KUBE_STATE_METRICS = {  # https://github.com/kubernetes/kube-state-metrics/blob/main/docs/metrics/workload/horizontalpodautoscaler-metrics.md
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
}


def tool(name: str) -> str:
    """A tool's path: kubernetes-validate from this environment or PATH (a dev extra); helm and checkov
    from charts/k8s_tools.py, which the set-up runs (no download from a test); else a skip with why."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is not None:
        return found
    if name == "kubernetes-validate":
        pytest.skip(
            "kubernetes-validate is not installed (a dev extra: pip install 'kubernetes-validate==1.37.0')"
        )
    path, reason = fetched_tool(name)
    if path is None:
        pytest.skip(reason)
    return path


@cache
def fetched_tool(name: str) -> tuple[str | None, str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "charts" / "k8s_tools.py"), "--no-download", name],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return None, done.stderr.strip()
    return done.stdout.split(maxsplit=1)[1].strip(), ""


def helm_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120)


def value_args(files: list[str], sets: tuple[str, ...] = ()) -> list[str]:
    return [*(a for f in files for a in ("-f", str(CHART / f))), *(a for s in sets for a in ("--set", s))]


def render(files: list[str], sets: tuple[str, ...] = ()) -> list[dict]:
    done = helm_run("template", "orate", str(CHART), "-n", "orate", *value_args(files, sets))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def write_manifests(docs: list[dict], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, doc in enumerate(docs):
        path = folder / f"{i:03d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


# --- CRD schemas as JSON Schema ------------------------------------------------------------------------


def structural_to_json_schema(node: object) -> object:
    """A CRD's openAPIV3Schema as JSON Schema: objects with properties take no others unless
    x-kubernetes-preserve-unknown-fields; int-or-string fields take both."""
    if isinstance(node, list):
        return [structural_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: structural_to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((FIXTURES / "crds" / CRD_FILES[(api_version, kind)]).read_text())
    version = api_version.split("/")[1]
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(structural_to_json_schema(schema))


def crd_errors(doc: dict) -> list[str]:
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    return [
        f"{doc['kind']}/{doc['metadata']['name']} {list(e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def validate_manifests(docs: list[dict], folder: Path) -> list[str]:
    """Every error of every object: core kinds by kubernetes-validate --strict, custom ones by their CRD."""
    core, errors = [], []
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_FILES:
            errors += crd_errors(doc)
        elif doc["kind"] not in UNVALIDATED_KINDS:
            core.append(doc)
    if core:
        paths = write_manifests(core, folder)
        done = subprocess.run(
            [tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        errors += [
            line
            for line in done.stdout.splitlines() + done.stderr.splitlines()
            if line.startswith(("ERROR", "WARN"))
        ]
    return errors


def checkov_failures(docs: list[dict], folder: Path) -> dict[str, list[str]]:
    """Failed checkov check ids and the resources failing each."""
    write_manifests(docs, folder)
    done = subprocess.run(
        [
            tool("checkov"),
            "-d",
            str(folder),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed: dict[str, list[str]] = {}
    for one in reports:
        for check in one.get("results", {}).get("failed_checks", []):
            failed.setdefault(check["check_id"], []).append(check["resource"])
    return failed


# --- the value sets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict(name: str) -> None:
    done = helm_run("lint", "--strict", str(CHART), *value_args(VALUE_SETS[name]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_objects_match_their_schemas(name: str, tmp_path: Path) -> None:
    docs = render(VALUE_SETS[name])
    assert validate_manifests(docs, tmp_path) == []
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap"} <= kinds


@pytest.mark.parametrize("name", VALUE_SETS)
def test_checkov_finds_nothing_but_accepted_checks(name: str, tmp_path: Path) -> None:
    failed = checkov_failures(render(VALUE_SETS[name]), tmp_path)
    assert {k: v for k, v in failed.items() if k not in CHECKOV_ACCEPTED} == {}


# --- each check catches a broken value set -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("models.face-vqvae.minReplicas=-1",), "minReplicas: Must be greater than or equal to 0"),
        (("models.face-vqvae.backnd=ray",), "Additional property backnd is not allowed"),
        (("kafka.sasl.mechanism=GSSAPI",), "kafka.sasl.mechanism"),
        (("models.preview-render.backend=triton",), "models.preview-render.tritonCommand is empty"),
        (("redis.urlSecret.name=",), "redis.host is required"),
    ],
)
def test_broken_values_fail_to_render(sets: tuple[str, ...], message: str) -> None:
    done = helm_run("template", "orate", str(CHART), *value_args([], sets))
    assert done.returncode != 0
    assert message in done.stderr


def test_schema_validation_catches_what_the_values_schema_allows(tmp_path: Path) -> None:
    # A toleration with a misspelt field passes values.schema.json (tolerations are free-form there) but
    # not Kubernetes' Pod schema (a Triton Deployment) nor KubeRay's (a RayService's worker pods).
    bad = {"key": "nvidia.com/gpu", "operator": "Exists", "efect": "NoSchedule"}
    docs = render(
        [],
        (
            f"models.face-vqvae.tolerations[0].key={bad['key']}",
            "models.face-vqvae.tolerations[0].operator=Exists",
            "models.face-vqvae.tolerations[0].efect=NoSchedule",
            "models.preview-render.tolerations[0].efect=NoSchedule",
        ),
    )
    errors = validate_manifests(docs, tmp_path)
    assert any("efect" in e and "face-vqvae" in e for e in errors), errors
    assert any("RayService" in e and "efect" in e for e in errors), errors


def test_crd_validation_catches_a_broken_custom_resource() -> None:
    docs = render([])
    scaled = copy.deepcopy(next(d for d in docs if d["kind"] == "ScaledObject"))
    scaled["spec"]["minReplicaCount"] = "one"
    del scaled["spec"]["scaleTargetRef"]["name"]
    ray = copy.deepcopy(next(d for d in docs if d["kind"] == "RayService"))
    del ray["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["groupName"]
    errors = crd_errors(scaled) + crd_errors(ray)
    assert any("'one' is not of type 'integer'" in e for e in errors), errors
    assert any("'name' is a required property" in e for e in errors), errors
    assert any("'groupName' is a required property" in e for e in errors), errors


def test_checkov_catches_a_low_user_id(tmp_path: Path) -> None:
    failed = checkov_failures(render([], ("podSecurityContext.runAsUser=1000",)), tmp_path)
    assert "CKV_K8S_40" in failed  # containers should run as a high UID


# --- behaviour of the rendered chart -------------------------------------------------------------------


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_runners_never_scale_beyond_the_partitions() -> None:
    docs = render([], ("kafka.partitions=4", "models.asr-sactc.runner.maxReplicas=20"))
    runner = by_kind(docs, "ScaledObject")["orate-runner-asr-sactc"]
    assert runner["spec"]["maxReplicaCount"] == 4
    trigger = runner["spec"]["triggers"][0]
    assert trigger["type"] == "kafka" and trigger["metadata"]["allowIdleConsumers"] == "false"
    assert trigger["metadata"]["topic"] == "orate.work.asr-sactc"


def container_env(deployment: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_switching_a_model_to_ray_is_one_value() -> None:
    triton = render([])
    ray = render([], ("models.face-vqvae.backend=ray",))
    assert "orate-face-vqvae-triton" in by_kind(triton, "Deployment")
    assert "orate-face-vqvae-triton" not in by_kind(ray, "Deployment")
    service = by_kind(ray, "RayService")["orate-face-vqvae"]
    app = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]
    assert app["deployments"][0]["autoscaling_config"]["max_replicas"] == 8
    runner = by_kind(ray, "Deployment")["orate-runner-face-vqvae"]
    assert container_env(runner)["ORATE_ENDPOINTS__RAY_SERVE_URL"] == "http://orate-face-vqvae-serve-svc:8000"


def test_the_api_reaches_every_model_at_the_service_its_runner_uses() -> None:
    docs = render([], ("models.face-vqvae.backend=ray",))
    deployments = by_kind(docs, "Deployment")
    services = json.loads(container_env(deployments["orate-api"])["ORATE_ENDPOINTS__SERVICES"])
    runners = {name.removeprefix("orate-runner-"): d for name, d in deployments.items() if "-runner-" in name}
    assert set(services) == set(runners)
    for service, runner in runners.items():
        env = container_env(runner)
        own = env.get("ORATE_ENDPOINTS__TRITON_GRPC_URL") or env["ORATE_ENDPOINTS__RAY_SERVE_URL"]
        assert services[service] == own, service
    assert services["face-vqvae"] == "http://orate-face-vqvae-serve-svc:8000"


def test_gpu_values_request_gpus_on_the_gpu_pool() -> None:
    docs = render(VALUE_SETS["gpu"])
    pod = by_kind(docs, "Deployment")["orate-face-vqvae-triton"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"orate.io/pool": "gpu"}
    assert pod["containers"][0]["image"].endswith("-gpu")


def test_chart_holds_no_secret_material() -> None:
    for name in VALUE_SETS:
        assert not by_kind(render(VALUE_SETS[name]), "Secret"), name


def test_values_table_is_current(tmp_path: Path) -> None:
    script = ROOT / "charts" / "values_table.py"
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    stale = tmp_path / "orate"
    shutil.copytree(CHART, stale)
    text = (
        (stale / "values.yaml")
        .read_text()
        .replace("  # -- Ray version of the RayServices", "  # -- Ray's version")
    )
    (stale / "values.yaml").write_text(text + "undocumented: 1\n")
    done = subprocess.run(
        [sys.executable, str(script), "--check", "--chart", str(stale)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "undocumented" in done.stderr


# --- metric names --------------------------------------------------------------------------------------

METRIC_REF = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_:]*)\{")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


@cache
def orate_metrics() -> frozenset[str]:
    """Names of the Counter, Gauge and Histogram definitions in the repository's code."""
    definition = re.compile(r"\b(?:Counter|Gauge|Histogram)\(\s*\"([a-z_]+)\"")
    names = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        names.update(definition.findall(path.read_text()))
    return frozenset(names)


@cache
def ray_sources() -> str:
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (the ray-serve extra): Ray's metric names cannot be looked up")
    folder = Path(ray.__file__).parent
    return "\n".join(
        p.read_text(errors="ignore")
        for p in [*(folder / "serve").rglob("*.py"), *(folder / "dashboard").rglob("*.py")]
    )


def unexported(names: set[str]) -> set[str]:
    """The names no known exporter defines."""
    missing = set()
    for name in names:
        base = name
        for suffix in SUFFIXES:
            base = base.removesuffix(suffix)
        if name.startswith("orate_"):
            found = name in orate_metrics() or base in orate_metrics() or f"{base}_total" in orate_metrics()
        elif name.startswith("ray_"):
            found = f'"{base.removeprefix("ray_")}"' in ray_sources()
        else:
            found = name in TRITON_METRICS | KUBE_STATE_METRICS
        if not found:
            missing.add(name)
    return missing


def referenced_metrics() -> set[str]:
    docs = render(VALUE_SETS["ray-only"]) + render([])
    exprs = [
        rule["expr"]
        for d in docs
        if d["kind"] == "PrometheusRule"
        for group in d["spec"]["groups"]
        for rule in group["rules"]
    ]
    dashboard = json.loads((CHART / "dashboards" / "orate.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    names = {m for e in exprs for m in METRIC_REF.findall(e) if not m.startswith("orate:")}
    names |= {m for e in exprs for m in re.findall(r"label_values\(([a-z_]+)", e)}
    return names


def test_every_metric_in_alerts_and_dashboard_is_exported() -> None:
    names = referenced_metrics()
    assert {
        "orate_job_duration_seconds_bucket",
        "nv_inference_queue_duration_us",
        "ray_node_gram_used",
    } <= names
    assert unexported(names) == set()


def test_an_unexported_metric_is_reported() -> None:
    assert unexported({"orate_jobs_vanished_total", "ray_serve_no_such_metric", "nv_made_up"}) == {
        "orate_jobs_vanished_total",
        "ray_serve_no_such_metric",
        "nv_made_up",
    }


# --- the model list ------------------------------------------------------------------------------------

SPEC_KEYS = (
    "predictor",
    "request_type",
    "response_type",
    "predictor_config",
    "max_batch_size",
    "batch_wait_ms",
)


def reference_entry(service: str, backend: str) -> dict:
    """The service's entry in its own deploy/ file for that backend, else the embedded stack's file."""
    own = ROOT / "services" / service / "deploy" / f"{backend}.yaml"
    path = own if own.is_file() else ROOT / "deploy" / "embedded" / "deployments.yaml"
    return next(d for d in yaml.safe_load(path.read_text())["deployments"] if d["service"] == service)


def model_drift(models: dict) -> list[str]:
    """Differences between the chart's models and the embedded stack's deployments."""
    embedded = {
        d["service"]: d
        for d in yaml.safe_load((ROOT / "deploy/embedded/deployments.yaml").read_text())["deployments"]
    }
    problems = [f"{s}: in the chart only" for s in models.keys() - embedded.keys()]
    problems += [f"{s}: in deploy/embedded/deployments.yaml only" for s in embedded.keys() - models.keys()]
    for service in models.keys() & embedded.keys():
        model = models[service]
        if model["backend"] != embedded[service]["backend"]:
            problems.append(f"{service}: backend {model['backend']} vs {embedded[service]['backend']}")
        reference = reference_entry(service, model["backend"])
        for key in SPEC_KEYS:
            if model["spec"].get(key) != reference.get(key, model["spec"].get(key)):
                problems.append(f"{service}.{key}: {model['spec'].get(key)!r} vs {reference.get(key)!r}")
    return problems


def test_chart_models_match_the_embedded_deployments() -> None:
    models = yaml.safe_load((CHART / "values.yaml").read_text())["models"]
    assert model_drift(models) == []


def test_model_drift_is_reported() -> None:
    models = copy.deepcopy(yaml.safe_load((CHART / "values.yaml").read_text())["models"])
    models["face-vqvae"]["spec"]["predictor_config"]["num_threads"] = 4
    models["nerf-render"] = models.pop("preview-render")
    assert sorted(model_drift(models)) == [
        "face-vqvae.predictor_config: {'checkpoint': 'demo', 'num_threads': 4}"
        " vs {'checkpoint': 'demo', 'num_threads': 1}",
        "nerf-render: in the chart only",
        "preview-render: in deploy/embedded/deployments.yaml only",
    ]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_deployments_file_loads(name: str) -> None:
    config = next(
        d
        for d in render(VALUE_SETS[name])
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-deployments")
    )
    parsed = DeploymentsFile.model_validate(yaml.safe_load(config["data"]["deployments.yaml"]))
    assert parsed.deployments


# --- skaffold ------------------------------------------------------------------------------------------


@cache
def skaffold_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        json.loads((FIXTURES / "schemas" / "skaffold-v4beta14.json").read_text())
    )


def test_skaffold_yaml_is_valid() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert [e.message for e in skaffold_validator().iter_errors(config)] == []
    assert {p["name"] for p in config["profiles"]} >= {"cpu", "gpu"}
    built = {a["image"] for a in config["build"]["artifacts"]}
    assert built == {
        f"orate/{s}" for s in ("orchestrator", "asr-sactc", "face-vqvae", "preview-render", "tts-gesture")
    }


def test_skaffold_schema_catches_a_release_without_a_name() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    del config["deploy"]["helm"]["releases"][0]["name"]
    best = jsonschema.exceptions.best_match(skaffold_validator().iter_errors(config))
    assert best is not None and "'name' is a required property" in best.message


@pytest.mark.parametrize("name", ["defaults", "external"])
def test_notes_render(name: str, tmp_path: Path) -> None:
    # helm template leaves NOTES.txt out; a copy of it as a YAML block renders it with the same values.
    chart = tmp_path / "orate"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes-check.yaml").write_text(
        "notes: |\n" + "".join(f"  {line}\n" for line in notes.splitlines())
    )
    done = helm_run(
        "template",
        "orate",
        str(chart),
        "-n",
        "orate",
        "--show-only",
        "templates/notes-check.yaml",
        *value_args(VALUE_SETS[name]),
    )
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)["notes"]
    assert "port-forward svc/orate-api 29600" in rendered
    assert "face-vqvae: triton" in rendered


def test_rayservice_import_path_builds_the_application() -> None:
    # serveConfigV2's import_path names deploy/images/orate_serve_app.py, which the images install.
    ray_serve = pytest.importorskip("ray.serve", reason="ray is not installed (the ray-serve extra)")
    service = by_kind(render([]), "RayService")["orate-preview-render"]
    app = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]
    module_name, _, function = app["import_path"].partition(":")
    spec = importlib.util.spec_from_file_location(
        module_name, ROOT / "deploy" / "images" / f"{module_name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = {**app["args"], "deployments_file": str(ROOT / "deploy" / "embedded" / "deployments.yaml")}
    application = getattr(module, function)(args)
    assert isinstance(application, ray_serve.Application)
    assert application._bound_deployment.name == "preview-render"
