"""The deployment files (deploy/), checked offline.

No Docker engine or cluster runs here, so nothing is built or started. What is
checked instead: every YAML file parses; the containers run exactly the
Procfile's process types; every `manage.py` command they run exists and
accepts its arguments; every environment variable they set is one the code
reads and the runbook documents; the sync configs they mount import cleanly and
every `${VAR}` in them reaches the containers that resolve it; probes and
scrape targets are real URLs that the configured ALLOWED_HOSTS accept; no
literal secret is written anywhere; resources and replicas are the seed's
(section 7); and the runbook names exactly the metrics the code exports.
"""

import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command, get_commands, load_command_class
from django.http.request import validate_host
from django.urls import Resolver404, resolve

ROOT = Path(settings.BASE_DIR)
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
RUNBOOK = ROOT / "docs" / "runbook.md"
SYNC_MOUNT = "/etc/sync/sync-config.json"

# Procfile process type -> (compose service, Kubernetes Deployment).
PROCESS_TYPES = {"web": ("web", "custsync-gateway"), "worker": ("worker", "custsync-worker")}

# Seed section 7 ("Betrieb"): requests/limits and the worker's replica count.
SEED_RESOURCES = {
    "custsync-gateway": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "custsync-worker": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
}
# The same in compose's units (deploy.resources: reservations / limits).
SEED_COMPOSE_RESOURCES = {
    "web": {"reservations": {"cpus": "0.25", "memory": "256M"}, "limits": {"cpus": "1", "memory": "512M"}},
    "worker": {"reservations": {"cpus": "0.5", "memory": "512M"}, "limits": {"cpus": "2", "memory": "1G"}},
}

# Variables the deploy files may set that no project module reads, each with the reader.
READ_OUTSIDE_PROJECT_CODE = {
    "PYTHONUNBUFFERED": "Python itself",
    "PYTHONDONTWRITEBYTECODE": "Python itself",
    "PIP_NO_CACHE_DIR": "pip (build only)",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip (build only)",
    "XDG_RUNTIME_DIR": "gunicorn's control socket directory",
    "CUSTSYNC_ADMIN_PASSWORD": "ensure_admin --password-env (the variable's name is an argument)",
}

SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|PRIVATE")
URL_WITH_PASSWORD = re.compile(r"^[a-z0-9+]+://[^:/@]*:([^@]*)@")
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")
SECRET_CONFIG_KEYS = {"token", "api_key", "secret", "secrets", "client_secret", "password"}
POD_IP = "10.12.13.14"


# --- Loading ---------------------------------------------------------------------------

def procfile() -> dict[str, list[str]]:
    types = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            types[name.strip()] = shlex.split(command)
    return types


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def k8s_object(kind: str, name: str) -> dict:
    matches = [d for d in k8s_docs() if d.get("kind") == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(matches)}"
    return matches[0]


def is_app_image(image: str) -> bool:
    return image.split(":")[0].split("/")[-1] == "custsync"


def app_services() -> dict[str, dict]:
    """Compose services running the custsync image (not postgres, redis)."""
    return {name: s for name, s in compose()["services"].items() if "build" in s or is_app_image(s.get("image", ""))}


def app_containers() -> list[tuple[str, dict, dict]]:
    """(workload name, container, pod spec) for every custsync container in deploy/k8s."""
    found = []
    for doc in k8s_docs():
        if doc.get("kind") in ("Deployment", "StatefulSet", "Job", "CronJob"):
            pod = doc["spec"]["template"]["spec"]
            if doc["kind"] == "CronJob":
                pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                if is_app_image(container["image"]):
                    found.append((doc["metadata"]["name"], container, pod))
    return found


def k8s_container(workload: str) -> dict:
    return next(c for name, c, _ in app_containers() if name == workload)


def as_argv(command) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def command_lines(argv: list[str], *, compose_file: bool = False) -> list[list[str]]:
    """The commands a container runs: itself, or each command of an `sh -c` script."""
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"], ["bash", "-c"]):
        script = argv[2].replace("$$", "$") if compose_file else argv[2]
        return [shlex.split(part) for part in re.split(r"&&|\|\||;|\n", script) if part.strip()]
    return [argv]


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def secret_template_keys() -> set[str]:
    return set(k8s_object("Secret", "custsync-secrets").get("stringData", {}))


def configmap_data(name: str) -> dict[str, str]:
    return k8s_object("ConfigMap", name).get("data", {})


def k8s_env(container: dict) -> dict[str, str]:
    """Every variable the container gets: envFrom (ConfigMap / Secret keys) and env (value or a marker)."""
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmap_data(source["configMapRef"]["name"]))
        if "secretRef" in source:
            assert source["secretRef"]["name"] == "custsync-secrets"
            env.update({key: "<secret>" for key in secret_template_keys()})
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<valueFrom>")
    return env


def manage_invocations() -> list[tuple[str, str, list[str]]]:
    """(where, command, args) for every `python manage.py ...` the deploy files run."""
    found = []
    for name, service in app_services().items():
        if "command" in service:
            for argv in command_lines(as_argv(service["command"]), compose_file=True):
                found.append((f"compose:{name}", argv))
    for workload, container, _ in app_containers():
        for argv in command_lines(container.get("command", []) + container.get("args", [])):
            found.append((f"k8s:{workload}", argv))
    for argv in command_lines(dockerfile_json("CMD")):
        found.append(("Dockerfile:CMD", argv))
    return [(where, argv[2], argv[3:]) for where, argv in found if argv[:2] == ["python", "manage.py"]]


def dockerfile_lines() -> list[str]:
    """Instructions with continuations joined, comment lines dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(" ".join(current.split()))
        current = ""
    return lines


def dockerfile_instructions(keyword: str) -> list[str]:
    return [line[len(keyword):].strip() for line in dockerfile_lines() if line.upper().startswith(keyword + " ")]


def dockerfile_json(keyword: str) -> list[str]:
    (value,) = dockerfile_instructions(keyword)
    if keyword == "HEALTHCHECK":
        value = value[value.index("CMD") + 3:].strip()
    return json.loads(value)


def dockerfile_env() -> dict[str, str]:
    env = {}
    for value in dockerfile_instructions("ENV"):
        for token in shlex.split(value):
            key, _, val = token.partition("=")
            env[key] = val
    return env


def project_python_files() -> list[Path]:
    """The project's own modules (not the venv, tests or migrations), deploy/gunicorn.conf.py included."""
    skip = {".venv", ".git", "tests", "migrations", "node_modules", "staticfiles", "var", "__pycache__"}
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in skip and not d.startswith(".")]
        found += [Path(directory) / f for f in files if f.endswith(".py")]
    return found


def variables_read_by_code() -> set[str]:
    """Names read by settings (django-environ), by `os.environ` in project code, or by the bin/ scripts."""
    names = set()
    patterns = [
        re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
        re.compile(r"os\.environ(?:\.get|\.setdefault|\.pop)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
        re.compile(r"os\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']\s*\]"),
        re.compile(r"os\.getenv\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    ]
    for path in project_python_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in patterns:
            names.update(pattern.findall(text))
    for path in (ROOT / "bin").iterdir():
        if path.is_file():
            names.update(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text(errors="replace")))
    return names


def sync_config_references(text: str) -> set[str]:
    return set(REFERENCE.findall(text))


def compose_sync_config(service: dict) -> Path | None:
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if target == SYNC_MOUNT:
            return (COMPOSE_FILE.parent / source).resolve()
    return None


# --- YAML and Dockerfile ---------------------------------------------------------------

@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path):
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs and all(isinstance(doc, dict) for doc in docs)
    if path.parent == K8S and path.name != "kustomization.yaml":
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name}: not a Kubernetes object"
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "custsync", f"{path.name}: {doc['kind']} without namespace"


def test_kustomization_lists_the_manifests_but_not_the_secret_template_or_the_job():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]  # placeholders would overwrite the real Secret
    assert "migrate-job.yaml" not in kustomization["resources"]  # Jobs are immutable: recreated per deploy
    listed = set(kustomization["resources"]) | {"secret.example.yaml", "migrate-job.yaml", "kustomization.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} == listed


def test_dockerfile_builds_a_non_root_image_running_the_procfile_web_process():
    (base,) = dockerfile_instructions("FROM")
    assert base == "python:3.11-slim"
    (user,) = dockerfile_instructions("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert dockerfile_instructions("EXPOSE") == ["8000"]
    assert dockerfile_json("CMD") == procfile()["web"]
    runs = " ".join(dockerfile_instructions("RUN"))
    assert "pip install -r requirements.txt" in runs
    assert re.search(r"DJANGO_SECRET_KEY=\S+ .*manage\.py collectstatic --no-input", runs), "collectstatic at build"


def test_dockerfile_keeps_the_build_only_secret_out_of_the_runtime_environment():
    env = dockerfile_env()
    assert not {name for name in env if SECRET_NAME.search(name) or name in ("DJANGO_SECRET_KEY", "DATABASE_URL")}
    assert not dockerfile_instructions("ARG"), "build args end up in the image history"
    assert set(env) <= variables_read_by_code() | set(READ_OUTSIDE_PROJECT_CODE)


def test_requirements_installed_in_the_image_are_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", line), f"not pinned: {line}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".git", "db.sqlite3*"} <= ignored
    # settings.py reads BASE_DIR/.env: a developer's .env in the image would override the deployment.
    assert "!.env" not in ignored


def test_dockerfile_healthcheck_is_the_liveness_endpoint():
    argv = dockerfile_json("HEALTHCHECK")
    (url,) = re.findall(r"http://[^'\"]+", " ".join(argv))
    url = url.replace("%s", "8000")
    assert resolve(urlsplit(url).path).url_name == "healthz"
    assert validate_host(urlsplit(url).hostname, settings.ALLOWED_HOSTS)  # the default ALLOWED_HOSTS


# --- Process types ---------------------------------------------------------------------

def test_every_procfile_process_type_is_deployed():
    assert set(procfile()) == set(PROCESS_TYPES), "a new process type needs a compose service and a Deployment"


@pytest.mark.parametrize("process_type", sorted(PROCESS_TYPES))
def test_compose_runs_the_procfile_command(process_type):
    service_name, _ = PROCESS_TYPES[process_type]
    assert as_argv(compose()["services"][service_name]["command"]) == procfile()[process_type]


@pytest.mark.parametrize("process_type", sorted(PROCESS_TYPES))
def test_kubernetes_runs_the_procfile_command(process_type):
    _, workload = PROCESS_TYPES[process_type]
    container = k8s_container(workload)
    assert container.get("command", []) + container.get("args", []) == procfile()[process_type]


def test_setup_runs_migrate_then_sync_config_then_schedules_before_the_processes():
    expected = ["migrate", "import_sync_config", "setup_schedules"]
    for where in ("compose:migrate", "k8s:custsync-migrate"):
        commands = [command for w, command, _ in manage_invocations() if w == where]
        assert commands[:3] == expected, where
    services = compose()["services"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    migrate_args = [args for w, c, args in manage_invocations() if c == "migrate"]
    assert all("--no-input" in args for args in migrate_args)


@pytest.mark.parametrize(
    "where,command,args", manage_invocations(), ids=lambda v: v if isinstance(v, str) and ":" in v else None
)
def test_manage_command_exists_and_accepts_its_arguments(where, command, args):
    commands = get_commands()
    assert command in commands, f"{where}: manage.py {command} does not exist"
    app = commands[command]
    parser = load_command_class(app, command).create_parser("manage.py", command)
    parser.parse_args(args)  # exits (SystemExit) on an unknown option or a missing argument


def test_the_compose_and_kubernetes_commands_were_all_found():
    where = {w for w, _, _ in manage_invocations()}
    assert {"compose:migrate", "compose:worker", "compose:sandbox", "k8s:custsync-migrate", "k8s:custsync-worker"} <= where


# --- Environment -----------------------------------------------------------------------

def _known_variables(*, command_text: str = "", sync_config_text: str = "", env: dict | None = None) -> set[str]:
    known = variables_read_by_code() | set(READ_OUTSIDE_PROJECT_CODE)
    known |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", command_text))
    known |= sync_config_references(sync_config_text)
    # Kubernetes `$(VAR)` expansion inside other values (e.g. POD_IP in ALLOWED_HOSTS).
    known |= {name for value in (env or {}).values() for name in re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", value)}
    return known


def test_compose_sets_only_variables_the_code_reads():
    for name, service in app_services().items():
        env = compose_env(service)
        config = compose_sync_config(service)
        known = _known_variables(
            command_text=" ".join(as_argv(service.get("command", []))),
            sync_config_text=config.read_text() if config else "",
        )
        assert set(env) <= known, f"compose:{name} sets variables nothing reads: {sorted(set(env) - known)}"


def test_kubernetes_sets_only_variables_the_code_reads():
    sync_text = configmap_data("custsync-sync-config")["sync-config.json"]
    for workload, container, _ in app_containers():
        env = k8s_env(container)
        known = _known_variables(
            command_text=" ".join(container.get("command", []) + container.get("args", [])),
            sync_config_text=sync_text, env=env,
        )
        assert set(env) <= known, f"k8s:{workload} sets variables nothing reads: {sorted(set(env) - known)}"


def test_every_variable_the_deploy_files_set_is_in_the_runbook():
    names = set(dockerfile_env()) - {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
    for service in app_services().values():
        names |= set(compose_env(service))
    for _, container, _ in app_containers():
        names |= set(k8s_env(container))
    runbook = RUNBOOK.read_text()
    missing = sorted(name for name in names if f"`{name}`" not in runbook)
    assert not missing, f"document these in docs/runbook.md: {missing}"


@pytest.mark.parametrize("process_type", sorted(PROCESS_TYPES))
def test_sync_config_secrets_reach_the_processes_that_resolve_them(process_type):
    service_name, workload = PROCESS_TYPES[process_type]
    service = compose()["services"][service_name]
    needed = sync_config_references(compose_sync_config(service).read_text())
    assert needed <= set(compose_env(service)), f"compose:{service_name} lacks {sorted(needed - set(compose_env(service)))}"
    needed = sync_config_references(configmap_data("custsync-sync-config")["sync-config.json"])
    env = k8s_env(k8s_container(workload))
    assert needed <= set(env), f"k8s:{workload} lacks {sorted(needed - set(env))}"


def test_sync_config_is_mounted_read_only_where_set_up_and_processes_run():
    for name in ("migrate", "web", "worker"):
        service = compose()["services"][name]
        assert any(v.endswith(f":{SYNC_MOUNT}:ro") for v in service["volumes"]), name
        assert compose_env(service)["SYNC_CONFIG_PATH"] == SYNC_MOUNT
    for workload, container, pod in app_containers():
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(Path(SYNC_MOUNT).parent)]
        assert len(mounts) == 1 and mounts[0]["readOnly"], workload
        config_map = volumes[mounts[0]["name"]]["configMap"]
        assert config_map["name"] == "custsync-sync-config"
        assert {"key": "sync-config.json", "path": Path(SYNC_MOUNT).name} in config_map["items"]
        assert k8s_env(container)["SYNC_CONFIG_PATH"] == SYNC_MOUNT


def _deploy_sync_configs(tmp_path) -> dict[str, Path]:
    configmap = tmp_path / "configmap-sync-config.json"
    configmap.write_text(configmap_data("custsync-sync-config")["sync-config.json"])
    return {"compose": DEPLOY / "sync-config.compose.json", "k8s": configmap}


@pytest.mark.django_db
def test_deploy_sync_configs_import_cleanly(tmp_path, monkeypatch, capsys):
    for label, path in _deploy_sync_configs(tmp_path).items():
        for name in sync_config_references(path.read_text()):
            monkeypatch.setenv(name, "whsec_" + "A" * 44 if name in ("SUPPORT_SECRET", "N8N_SECRET") else "x" * 32)
        call_command("import_sync_config", str(path), "--check")
        assert "valid" in capsys.readouterr().out, label


# --- Probes and scraping ---------------------------------------------------------------

def _url_name(path: str) -> str:
    try:
        return resolve(path).url_name
    except Resolver404:
        pytest.fail(f"{path} is not a URL of custsync_project/urls.py")


def test_compose_healthchecks_use_real_endpoints_on_allowed_hosts():
    services = compose()["services"]
    for name, service in app_services().items():
        check = service.get("healthcheck", {})
        if check.get("disable"):
            continue
        text = " ".join(as_argv(check["test"]))
        urls = re.findall(r"http://[^'\"\s]+", text)
        if name == "worker":
            (url,) = urls
            assert urlsplit(url).path == "/metrics" and urlsplit(url).port == int(compose_env(service)["METRICS_PORT"])
        elif name == "sandbox":
            assert "8100" in text
        else:
            (url,) = urls
            assert _url_name(urlsplit(url).path) in ("healthz", "readyz"), name
            allowed = compose_env(service)["ALLOWED_HOSTS"].split(",")
            assert validate_host(urlsplit(url).hostname, allowed), f"{name}: {url} not in ALLOWED_HOSTS"
    assert services["web"]["ports"] and "ports" not in services["worker"]  # 3 replicas: no fixed host port


def _gateway_allowed_hosts() -> list[str]:
    env = k8s_env(k8s_container("custsync-gateway"))
    return env["ALLOWED_HOSTS"].replace("$(POD_IP)", POD_IP).split(",")


def test_gateway_probes_are_healthz_and_readyz_on_a_host_django_accepts():
    container = k8s_container("custsync-gateway")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == 8000
    liveness, readiness = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
    assert _url_name(liveness["path"]) == "healthz"
    assert _url_name(readiness["path"]) == "readyz"
    for probe in (liveness, readiness):
        assert probe["port"] in ("http", 8000)
        # The kubelet sends the pod IP as Host unless a Host header is set.
        host = next((h["value"] for h in probe.get("httpHeaders", []) if h["name"].lower() == "host"), POD_IP)
        assert validate_host(host, _gateway_allowed_hosts()), f"probe Host {host} would get 400 DisallowedHost"


def test_worker_liveness_is_its_metrics_endpoint():
    container = k8s_container("custsync-worker")
    env = k8s_env(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/metrics"
    assert ports[probe["port"]] == int(env["METRICS_PORT"])


def test_prometheus_scrapes_every_pod_on_a_real_metrics_endpoint():
    for workload in ("custsync-gateway", "custsync-worker"):
        deployment = k8s_object("Deployment", workload)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        container = k8s_container(workload)
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) in {p["containerPort"] for p in container["ports"]}
        if workload == "custsync-gateway":
            assert _url_name(annotations["prometheus.io/path"]) == "metrics"
            assert validate_host(POD_IP, _gateway_allowed_hosts())  # Prometheus addresses the pod by IP
        else:
            assert int(annotations["prometheus.io/port"]) == int(k8s_env(container)["METRICS_PORT"])
    service = k8s_object("Service", "custsync-worker-metrics")
    assert service["spec"]["clusterIP"] == "None"


def test_services_autoscaler_and_budget_point_at_the_deployments():
    for doc in k8s_docs():
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
            pods = [d for d in k8s_docs() if d["kind"] == "Deployment"
                    and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
            assert pods, f"Service {doc['metadata']['name']} selects no Deployment"
        if doc["kind"] == "HorizontalPodAutoscaler":
            target = k8s_object("Deployment", doc["spec"]["scaleTargetRef"]["name"])
            assert doc["spec"]["minReplicas"] <= target["spec"]["replicas"] <= doc["spec"]["maxReplicas"]
        if doc["kind"] == "Deployment":
            assert doc["spec"]["selector"]["matchLabels"].items() <= doc["spec"]["template"]["metadata"]["labels"].items()


# --- Secrets ---------------------------------------------------------------------------

def _assert_no_literal_secret(where: str, name: str, value: str) -> None:
    if SECRET_NAME.search(name):
        assert REFERENCE.fullmatch(value.strip()), f"{where}: {name} must be a ${{VAR}} reference, not a literal"
    match = URL_WITH_PASSWORD.match(value)
    if match:
        assert REFERENCE.fullmatch(match.group(1)), f"{where}: {name} holds a literal password"


def test_compose_holds_no_literal_secret():
    for name, service in compose()["services"].items():
        for key, value in compose_env(service).items():
            _assert_no_literal_secret(f"compose:{name}", key, value)


def test_kubernetes_takes_secrets_from_the_secret_only():
    for workload, container, _ in app_containers():
        for item in container.get("env", []):
            sensitive = SECRET_NAME.search(item["name"]) or item["name"] in ("DATABASE_URL", "REDIS_URL")
            assert not (sensitive and "value" in item), f"k8s:{workload}: {item['name']} must come from secretKeyRef"
            if "valueFrom" in item and sensitive:
                assert item["valueFrom"]["secretKeyRef"]["name"] == "custsync-secrets"
    for doc in k8s_docs():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] != "custsync-sync-config":
            for key, value in doc["data"].items():
                assert not SECRET_NAME.search(key) and not URL_WITH_PASSWORD.match(value), f"ConfigMap {key}"
    for key, value in k8s_object("Secret", "custsync-secrets")["stringData"].items():
        assert re.fullmatch(r"<[^>]*>", value), f"secret.example.yaml: {key} must be a <placeholder>"
    assert "data" not in k8s_object("Secret", "custsync-secrets")


def _secret_fields(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            if key in SECRET_CONFIG_KEYS:
                for secret in item if isinstance(item, list) else [item]:
                    yield f"{path}.{key}", secret
            else:
                yield from _secret_fields(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_fields(item, f"{path}[{index}]")


def test_sync_configs_hold_references_not_secrets(tmp_path):
    for label, path in _deploy_sync_configs(tmp_path).items():
        fields = list(_secret_fields(json.loads(path.read_text())))
        assert fields, label
        for where, value in fields:
            assert REFERENCE.fullmatch(value), f"{label}{where} must be a ${{VAR}} reference"


def test_no_secret_looking_literal_in_any_deploy_file():
    for path in list(DEPLOY.rglob("*")) + [ROOT / ".dockerignore"]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not re.search(r"whsec_[A-Za-z0-9+/]{16,}", text), path
            assert not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text), path


# --- Resources and replicas (seed section 7) -------------------------------------------

@pytest.mark.parametrize("workload", sorted(SEED_RESOURCES))
def test_kubernetes_resources_are_the_seeds(workload):
    resources = k8s_container(workload)["resources"]
    assert {kind: {k: str(v) for k, v in values.items()} for kind, values in resources.items()} == SEED_RESOURCES[workload]


@pytest.mark.parametrize("service", sorted(SEED_COMPOSE_RESOURCES))
def test_compose_resources_are_the_seeds(service):
    resources = compose()["services"][service]["deploy"]["resources"]
    assert {kind: {k: str(v) for k, v in values.items()} for kind, values in resources.items()} == SEED_COMPOSE_RESOURCES[service]


def test_replicas_gateway_two_or_more_and_three_workers():
    assert compose()["services"]["worker"]["deploy"]["replicas"] == 3
    assert k8s_object("Deployment", "custsync-worker")["spec"]["replicas"] == 3
    assert k8s_object("Deployment", "custsync-gateway")["spec"]["replicas"] == 2


def test_compose_runs_postgres_15_and_redis_7_wired_to_the_app():
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for name, service in app_services().items():
        if name == "sandbox":
            continue
        env = compose_env(service)
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"], name
        assert env["REDIS_URL"].startswith("redis://redis:6379/"), name
        assert env.get("PROMETHEUS_MULTIPROC_DIR") or name == "migrate", name


# --- Runbook ---------------------------------------------------------------------------

def metrics_defined() -> set[str]:
    pattern = re.compile(
        r"(?:Counter|Histogram|Gauge|Summary|GaugeMetricFamily|CounterMetricFamily|HistogramMetricFamily)\(\s*"
        r"[\"'](custsync_\w+)[\"']"
    )
    names = set()
    for path in project_python_files():
        names.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def _base_metric(name: str) -> str:
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def test_runbook_documents_every_metric_and_names_no_other():
    defined = metrics_defined()
    assert "custsync_inbox_lag_seconds" in defined
    # Metric names, not module paths such as custsync_project.wsgi.
    mentioned = set(re.findall(r"\bcustsync_[a-z_]+\b(?![./])", RUNBOOK.read_text()))
    unknown = {m for m in mentioned if m not in defined and _base_metric(m) not in defined}
    assert not unknown, f"the runbook names metrics the code does not export: {sorted(unknown)}"
    undocumented = {m for m in defined if not any(m == x or m == _base_metric(x) for x in mentioned)}
    assert not undocumented, f"document these metrics in docs/runbook.md: {sorted(undocumented)}"


def test_runbook_commands_exist():
    commands = set(re.findall(r"manage\.py ([a-z_]+)", RUNBOOK.read_text()))
    available = get_commands()
    missing = {c for c in commands if c not in available}
    assert not missing, f"the runbook names commands that do not exist: {sorted(missing)}"
