#!/usr/bin/env python3
"""The checks of scripts/check-deploy that need more than a command line: run by it, with
HELM set to the helm binary. Offline: no cluster, no container engine.

  python3 scripts/deploy_checks.py

1. The Dockerfile and chart agree with Cargo.toml (version), .dockerignore lets in what the
   build copies, and the HEALTHCHECK command works against the real binary ($HUDDLE_BIN).
2. `helm template` of the default values and of every helm/huddle/ci/*-values.yaml; every
   manifest validated against the Kubernetes JSON schemas (kubernetes-validate, strict) for
   each version in KUBE_VERSIONS. ServiceMonitor (a CRD) is not in those schemas: it is skipped
   there and checked here for the fields the chart writes; any other unknown kind fails.
3. What the chart promises: dev mode off, probes, drain grace, hardened security contexts,
   hook order, websocket timeouts, references between the manifests (Services select pods,
   Ingresses name Services and ports, secretKeyRefs name keys the chart's Secret holds),
   HUDDLE_* variables the server documents.
4. values.schema.json refuses typos, and the templates refuse inconsistent values with a
   message saying what to change.
5. With $HUDDLE_BIN and redis-server present: the rendered containers run for real. Their env
   is resolved as the kubelet would (downward API, secrets, $(VAR) expansion, $$ escapes), only
   ports and databases swapped for local ones, and the real binary must start and be ready:
   the role-all pod, a split signaling worker and relay sharing a private redis-server (the
   relay announcing its per-pod URL), the app bootstrap script twice (creates, then finds
   it), and the migration Job's command.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml
import kubernetes_validate.utils as kv

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CHART = os.path.join(ROOT, "helm", "huddle")
HELM = os.environ.get("HELM", "helm")
KUBE_VERSIONS = os.environ.get("KUBE_VERSIONS", "1.28 1.31").split()
# The kind the chart may render that has no schema in kubernetes-validate (a CRD).
SKIPPED_KINDS = {"ServiceMonitor"}
RELEASE = "t"

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def section(title):
    print(f"-- {title}", flush=True)


# ----------------------------------------------------------------------------- rendering


def helm(*args, expect_ok=True):
    proc = subprocess.run([HELM, *args], capture_output=True, text=True)
    if expect_ok and proc.returncode != 0:
        raise SystemExit(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def render(values_file=None, sets=()):
    args = ["template", RELEASE, CHART, "--namespace", "huddle", "--kube-version", "1.31.0"]
    if values_file:
        args += ["-f", values_file]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def values_of(values_file):
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    if values_file:
        with open(values_file) as f:
            merge(values, yaml.safe_load(f) or {})
    return values


def merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value


def name_of(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_specs(docs):
    """(owner doc, pod spec, pod labels) of every workload."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            template = doc["spec"]["template"]
            yield doc, template["spec"], template["metadata"].get("labels", {})


def is_huddle_image(image, values):
    return image.startswith(values["image"]["repository"] + ":")


def serves(container):
    """Does this container run `huddle serve` (directly or through the relay's script)?"""
    words = container.get("command", []) + container.get("args", [])
    return "serve" in words or any("exec huddle serve" in w for w in words)


# ----------------------------------------------------------------------------- 1. image


def check_image():
    section("Dockerfile and chart versions, build context, HEALTHCHECK")
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        cargo_version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        dockerfile = f.read()
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    arg = re.search(r"^ARG VERSION=(\S+)", dockerfile, re.M)
    check(arg and arg.group(1) == cargo_version,
          f"Dockerfile ARG VERSION is not Cargo.toml's version {cargo_version}")
    check(chart["appVersion"] == cargo_version,
          f"Chart.yaml appVersion {chart['appVersion']} is not Cargo.toml's version {cargo_version}")
    check("cargo build --release --locked" in dockerfile, "the image is not built with --locked")

    with open(os.path.join(ROOT, ".dockerignore")) as f:
        allowed = {line[1:].strip().rstrip("/") for line in f if line.startswith("!")}
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            check(os.path.exists(os.path.join(ROOT, path)), f"Dockerfile copies {path}, which does not exist")
            check(path in allowed, f"Dockerfile copies {path}, which .dockerignore leaves out")
    # Everything the binary compiles in from outside src/ must be in the build context.
    for root, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if not name.endswith(".rs"):
                continue
            with open(os.path.join(root, name)) as f:
                text = f.read().split("#[cfg(test)]")[0]
            for rel in re.findall(r'include_(?:bytes|str)!\("([^"]+)"\)', text):
                target = os.path.relpath(os.path.normpath(os.path.join(root, rel)), ROOT)
                check(target.split(os.sep)[0] in allowed,
                      f"{name} compiles in {target}, outside the image's build context")

    binary = os.environ.get("HUDDLE_BIN")
    joined = dockerfile.replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", joined, re.M)
    if not check(match, "no HEALTHCHECK in exec form"):
        return
    command = json.loads(match.group(1))
    if not (binary and os.access(binary, os.X_OK)):
        print("   HEALTHCHECK run skipped: no HUDDLE_BIN")
        return
    with tempfile.TemporaryDirectory() as data:
        port = free_tcp_port()
        env = clean_env(HUDDLE_HTTP_ADDR=f"127.0.0.1:{port}", HUDDLE_DATA_DIR=data)
        with Server([binary, "serve"], env, port, "healthcheck") as server:
            server.wait_ready("/healthz")
            probe_env = dict(os.environ, HUDDLE_HTTP_ADDR=f"0.0.0.0:{port}")
            ok = subprocess.run(command, env=probe_env, capture_output=True, timeout=5).returncode
            check(ok == 0, "the HEALTHCHECK command fails against a serving huddle")
        down = subprocess.run(command, env=probe_env, capture_output=True, timeout=5).returncode
        check(down != 0, "the HEALTHCHECK command succeeds with nothing listening")


# ----------------------------------------------------------------------------- 2. schemas


def check_servicemonitor(doc, where):
    spec = doc.get("spec", {})
    check(doc.get("apiVersion") == "monitoring.coreos.com/v1", f"{where}: ServiceMonitor apiVersion")
    check(isinstance(spec.get("selector", {}).get("matchLabels"), dict), f"{where}: ServiceMonitor selector")
    endpoints = spec.get("endpoints", [])
    check(endpoints and all(set(e) <= {"port", "path", "interval", "scrapeTimeout"} for e in endpoints),
          f"{where}: ServiceMonitor endpoints carry fields the chart does not write")
    check(all(e.get("path") == "/metrics" and e.get("port") == "http" for e in endpoints),
          f"{where}: ServiceMonitor must scrape port http, /metrics")
    check(set(spec) <= {"selector", "namespaceSelector", "endpoints"}, f"{where}: ServiceMonitor spec fields")


def validate_schemas(docs, where):
    for doc in docs:
        if doc["kind"] in SKIPPED_KINDS:
            check_servicemonitor(doc, where)
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                failures.append(f"{where}: {name_of(doc)} is not valid Kubernetes {version}: {path}: {e.message}")
            except kv.SchemaNotFoundError:
                failures.append(f"{where}: {name_of(doc)}: no Kubernetes {version} schema for {doc['apiVersion']}")


# ----------------------------------------------------------------------------- 3. promises


def documented_env():
    with open(os.path.join(ROOT, "README.md")) as f:
        return set(re.findall(r"`(HUDDLE_[A-Z0-9_]+)`", f.read()))


def check_promises(docs, values, where):
    kinds = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    documented = documented_env()
    grace_needed = -(-values["drain"]["timeoutMs"] // 1000)

    chart_secret = {}
    for doc in kinds.get("Secret", []):
        chart_secret[doc["metadata"]["name"]] = set(doc.get("data", {}))
    existing = {values[k].get("existingSecret") for k in ("database", "redis", "turn", "bootstrapApp")} - {"", None}

    for owner, spec, labels in pod_specs(docs):
        who = f"{where}: {name_of(owner)}"
        check(spec.get("automountServiceAccountToken") is False, f"{who}: mounts a service account token")
        pod_sc = spec.get("securityContext", {})
        for container in spec.get("initContainers", []) + spec["containers"]:
            cname = f"{who}/{container['name']}"
            sc = container.get("securityContext", {})
            if container["name"] == "node-sysctl":
                check(values["relay"]["sysctlInit"]["enabled"], f"{cname}: privileged init container while disabled")
                continue
            check(sc.get("runAsNonRoot") is True, f"{cname}: not runAsNonRoot")
            check(sc.get("readOnlyRootFilesystem") is True, f"{cname}: root filesystem writable")
            check(sc.get("allowPrivilegeEscalation") is False, f"{cname}: privilege escalation allowed")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cname}: capabilities not dropped")
            seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
            check(seccomp.get("type") == "RuntimeDefault", f"{cname}: no RuntimeDefault seccomp profile")
            check("resources" in container, f"{cname}: no resources")
            env = {e["name"]: e for e in container.get("env", [])}
            for name, entry in env.items():
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] in chart_secret:
                    check(ref["key"] in chart_secret[ref["name"]],
                          f"{cname}: {name} reads key {ref['key']} that {ref['name']} does not hold")
                elif ref:
                    check(ref["name"] in existing, f"{cname}: {name} reads Secret {ref['name']} nobody provides")
                if name.startswith("HUDDLE_"):
                    check(name in documented,
                          f"{cname}: sets {name}, which README.md does not document")
            if not is_huddle_image(container["image"], values):
                continue
            if serves(container):
                check(env.get("HUDDLE_DEV", {}).get("value") == "false", f"{cname}: HUDDLE_DEV is not false")
                check(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
                      f"{cname}: readiness is not /readyz")
                check(container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
                      f"{cname}: liveness is not /healthz")
                check(spec.get("terminationGracePeriodSeconds", 30) > grace_needed,
                      f"{cname}: terminationGracePeriodSeconds does not cover the drain ({grace_needed} s)")
                check("HUDDLE_DRAIN_TIMEOUT_MS" in env, f"{cname}: no HUDDLE_DRAIN_TIMEOUT_MS")
                check(("HUDDLE_TURN_URLS" in env) == values["turn"]["enabled"], f"{cname}: TURN settings")

    # Hooks: the Secret first, then the migration, then the bootstrap.
    weights = {}
    for doc in docs:
        annotations = doc["metadata"].get("annotations", {})
        if "helm.sh/hook" in annotations:
            check(annotations["helm.sh/hook"] == "pre-install,pre-upgrade", f"{where}: {name_of(doc)} hook")
            weights[doc["kind"] + ":" + doc["metadata"]["name"].rsplit("-", 1)[-1]] = int(
                annotations.get("helm.sh/hook-weight", "0"))
    if "Job:migrate" in weights:
        check(weights.get("Secret:secrets", -1) < weights["Job:migrate"], f"{where}: Secret not before migration")
    if "Job:app" in weights and "Job:migrate" in weights:
        check(weights["Job:migrate"] < weights["Job:app"], f"{where}: bootstrap not after migration")
    postgres = bool(values["database"]["url"] or values["database"]["existingSecret"])
    check(("Job:migrate" in weights) == postgres, f"{where}: migration Job iff PostgreSQL")

    # Services select pods; Ingresses and the HPA name what exists.
    pods = [(labels, spec) for _, spec, labels in pod_specs(docs)]
    services = {d["metadata"]["name"]: d for d in kinds.get("Service", [])}
    for name, svc in services.items():
        selector = svc["spec"]["selector"]
        matching = [spec for labels, spec in pods
                    if all(labels.get(k) == v for k, v in selector.items() if k != "statefulset.kubernetes.io/pod-name")]
        check(matching, f"{where}: Service {name} selects no pod")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str):
                check(any(target in {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
                          for spec in matching), f"{where}: Service {name} targets unknown port {target}")
    for ing in kinds.get("Ingress", []):
        a = ing["metadata"].get("annotations", {})
        for key in ("nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"):
            check(int(a.get(key, "0")) >= 3600, f"{where}: Ingress {ing['metadata']['name']} {key} under 3600")
        check(bool(ing["spec"].get("tls")) == values["ingress"]["tls"]["enabled"], f"{where}: Ingress TLS")
        for rule in ing["spec"]["rules"]:
            check(rule["host"] == values["ingress"]["host"], f"{where}: Ingress host")
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services.get(backend["name"])
                check(svc and backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]},
                      f"{where}: Ingress backend {backend} does not exist")
    for hpa in kinds.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        deployment = [d for d in kinds.get("Deployment", []) if d["metadata"]["name"] == target]
        check(deployment and "replicas" not in deployment[0]["spec"],
              f"{where}: the HPA's Deployment must leave replicas to it")
    # Role split: the relays advertise per-pod URLs that the Ingress routes.
    if values["role"] == "split" and not values["relay"]["publicUrl"]:
        relay_ingresses = [i for i in kinds.get("Ingress", []) if "/relay-nodes/" in json.dumps(i["spec"])]
        check(len(relay_ingresses) == values["relay"]["replicas"], f"{where}: one Ingress path per relay")


# ----------------------------------------------------------------------------- 4. refusals


def check_refusals():
    section("values.schema.json refuses typos; the templates refuse inconsistent values")
    typos = {
        "ingres.host=huddle.example.com": "Additional property ingres is not allowed",
        "signaling.replica=3": "Additional property replica is not allowed",
        "relay.expose=hostnetwork": "relay.expose must be one of",
        "relay.udpPort=70000": "relay.udpPort",
        "role=both": "role must be one of",
        "drain.timeoutMS=1000": "Additional property timeoutMS is not allowed",
        "turn.coturn.tls.enable=true": "Additional property enable is not allowed",
        "drain.timeoutMs=700000": "drain.timeoutMs",
    }
    for value, expected in typos.items():
        proc = helm("template", RELEASE, CHART, "--set", value, expect_ok=False)
        check(proc.returncode != 0 and expected in proc.stderr,
              f"--set {value} was not refused with “{expected}”: {proc.stderr.strip()[:300]}")
    inconsistent = {
        ("role=split",): "role split: every pod shares one PostgreSQL",
        ("role=split", "database.url=postgres://h@db/h"): "role split: signaling and relays share rooms through Redis",
        ("role=split", "database.url=postgres://h@db/h", "redis.url=redis://r:6379"): "enable the ingress",
        ("relay.expose=loadBalancer",): "relay.publicIPs needs one reserved IP per relay",
        ("relay.expose=nodePort",): "NodePort range 30000-32767",
        ("turn.enabled=true",): "set turn.urls",
        ("turn.enabled=true", "turn.urls={turn:turn.example.net:3478}"): "static-auth-secret",
        ("ingress.enabled=true",): "set ingress.host",
        ("signaling.autoscaling.enabled=true",): "use role split to scale out",
        ("redis.url=redis://r:6379",): "set publicUrl",
    }
    for sets, expected in inconsistent.items():
        args = ["template", RELEASE, CHART]
        for s in sets:
            args += ["--set", s]
        proc = helm(*args, expect_ok=False)
        check(proc.returncode != 0 and expected in proc.stderr,
              f"--set {' '.join(sets)} was not refused with “{expected}”: {proc.stderr.strip()[:300]}")


# ----------------------------------------------------------------------------- 5. run them


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUDDLE_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(extra)
    return env


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_ports(count):
    """A run of `count` consecutive free UDP ports."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("0.0.0.0", 0))
            base = s.getsockname()[1]
        if base + count > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise SystemExit("no free UDP port range")


class Server:
    def __init__(self, argv, env, port, label):
        self.port, self.label = port, label
        self.log = tempfile.NamedTemporaryFile(prefix=f"huddle-{label}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self):
        return self

    def wait_ready(self, path="/readyz", timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        with open(self.log.name) as f:
            tail = f.read()[-2000:]
        failures.append(f"{self.label}: not ready on {path} within {timeout} s (exit {self.proc.poll()}):\n{tail}")
        return False

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.unlink(self.log.name)


def expand(text, env):
    """Kubernetes' $(VAR) expansion: defined names are replaced, $$ is a literal $."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def kubelet_env(container, pod, secrets, overrides):
    """The container's environment as the kubelet would build it (in order, with expansion)."""
    env = {}
    for entry in container.get("env", []):
        name = entry["name"]
        if name in overrides:
            env[name] = overrides[name]
        elif "value" in entry:
            env[name] = expand(str(entry["value"]), env)
        else:
            source = entry["valueFrom"]
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                value = pod["fields"][path]
            else:
                ref = source["secretKeyRef"]
                value = secrets.get((ref["name"], ref["key"]), secrets.get(ref["key"]))
                if value is None:
                    raise SystemExit(f"no test value for secret {ref}")
            env[name] = value
    return env


def argv_of(container, env):
    words = [expand(w, env) for w in container.get("command", ["huddle"]) + container.get("args", [])]
    return words


def chart_secrets(docs):
    out = {}
    for doc in docs:
        if doc["kind"] == "Secret":
            for key, value in doc.get("data", {}).items():
                out[(doc["metadata"]["name"], key)] = base64.b64decode(value).decode()
    return out


def find(docs, kind, suffix):
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"].endswith(suffix):
            return doc
    raise SystemExit(f"no {kind} *{suffix} rendered")


def run_containers():
    binary = os.environ.get("HUDDLE_BIN")
    redis_server = shutil.which("redis-server")
    if not (binary and os.access(binary, os.X_OK)):
        section("rendered containers run: skipped (no HUDDLE_BIN)")
        return
    section("rendered containers run against the real binary")
    bindir = tempfile.mkdtemp(prefix="huddle-bin-")
    work = tempfile.mkdtemp(prefix="huddle-deploy-")
    os.symlink(os.path.abspath(binary), os.path.join(bindir, "huddle"))
    path = bindir + os.pathsep + os.environ.get("PATH", "")
    test_secrets = {"server-secret": "s" * 40, "turn-secret": "t" * 40}
    try:
        # The role-all pod of the default values (SQLite in its volume, relay on the node).
        docs = render(sets=["ingress.enabled=true", "ingress.host=localhost", "ingress.tls.enabled=false",
                            "allowedOrigins={https://shop.example.com}", "bootstrapApp.enabled=true"])
        spec = find(docs, "Deployment", "huddle")["spec"]["template"]["spec"]
        secrets = dict(chart_secrets(docs), **test_secrets)
        http = free_tcp_port()
        udp = free_udp_ports(2)
        data = os.path.join(work, "all")
        os.mkdir(data)
        pod = {"fields": {"metadata.name": "t-huddle-5d9c7-x2x9z", "status.hostIP": "127.0.0.1"}}
        overrides = {"HUDDLE_HTTP_ADDR": f"0.0.0.0:{http}", "HUDDLE_RELAY_UDP_ADDR": f"0.0.0.0:{udp}",
                     "HUDDLE_DATA_DIR": data}
        init = spec["initContainers"][0]
        check(init["name"] == "bootstrap-app", "role all with SQLite: the bootstrap runs as an init container")
        for attempt, expected in ((1, '"serverSecret":"<in the Secret>"'), (2, "exists: nothing to do")):
            env = dict(kubelet_env(init, pod, secrets, overrides), PATH=path)
            proc = subprocess.run(argv_of(init, env), env=clean_env(**env), capture_output=True, text=True, timeout=60)
            if check(proc.returncode == 0 and expected in proc.stdout and "s" * 40 not in proc.stdout + proc.stderr,
                     f"bootstrap run {attempt}: {proc.returncode} {proc.stdout!r} {proc.stderr!r}"):
                print(f"   bootstrap-app init container, run {attempt}: {proc.stdout.strip()}")
        container = spec["containers"][0]
        env = dict(kubelet_env(container, pod, secrets, overrides), PATH=path)
        with Server(argv_of(container, env), clean_env(**env), http, "role-all") as server:
            if server.wait_ready():
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5) as r:
                    check(b"huddle_build_info" in r.read(), "role all: /metrics")
                print("   role-all pod: ready (/readyz 200), /metrics served")
                # SIGTERM with no client connected: the drain has nobody to wait for.
                started = time.time()
                os.killpg(server.proc.pid, signal.SIGTERM)
                try:
                    code = server.proc.wait(15)
                    check(code == 0, f"role all: exit code {code} after SIGTERM")
                    print(f"   role-all pod: SIGTERM with no clients, exited {code} after {time.time() - started:.1f} s")
                except subprocess.TimeoutExpired:
                    failures.append("role all: still running 15 s after SIGTERM with no clients")

        # The split layout: a signaling worker and relay 2 (whose advertised IPs are an IPv4
        # and an IPv6 address) on a private redis-server, one SQLite file standing in for
        # PostgreSQL; then the migration Job's command on it.
        if not redis_server:
            section("split layout run: skipped (no redis-server)")
            return
        docs = render(os.path.join(CHART, "ci", "relay-loadbalancer-values.yaml"))
        secrets = dict(chart_secrets(docs), **test_secrets)
        redis_port = free_tcp_port()
        redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            shared = {"HUDDLE_DATABASE_URL": f"sqlite://{work}/split.db",
                      "HUDDLE_REDIS_URL": f"redis://127.0.0.1:{redis_port}"}
            migrate = find(docs, "Job", "-migrate")["spec"]["template"]["spec"]["containers"][0]
            env = dict(kubelet_env(migrate, {"fields": {}}, secrets, shared), PATH=path)
            proc = subprocess.run(argv_of(migrate, env), env=clean_env(**env), capture_output=True, text=True, timeout=60)
            if check(proc.returncode == 0 and '"migrated":true' in proc.stdout, f"migration Job: {proc.stdout} {proc.stderr}"):
                print(f"   migration Job: {proc.stdout.strip()}")
            # The bootstrap Job of the HA values (a fixed app id), twice.
            ha = render(os.path.join(CHART, "ci", "ha-values.yaml"))
            job = find(ha, "Job", "-bootstrap-app")["spec"]["template"]["spec"]["containers"][0]
            for attempt, expected in ((1, '{"appId":1000,"serverSecret":"<in the Secret>"}'),
                                      (2, "app 1000 exists: nothing to do")):
                env = dict(kubelet_env(job, {"fields": {}}, test_secrets, shared), PATH=path)
                proc = subprocess.run(argv_of(job, env), env=clean_env(**env), capture_output=True, text=True,
                                      timeout=60)
                if check(proc.returncode == 0 and expected in proc.stdout,
                         f"bootstrap Job run {attempt}: {proc.returncode} {proc.stdout!r} {proc.stderr!r}"):
                    print(f"   bootstrap-app Job, run {attempt}: {proc.stdout.strip()}")

            sig_spec = find(docs, "Deployment", "huddle")["spec"]["template"]["spec"]
            relay_set = find(docs, "StatefulSet", "-relay")
            relay_spec = relay_set["spec"]["template"]["spec"]
            sig_http, relay_http = free_tcp_port(), free_tcp_port()
            relay_name = relay_set["metadata"]["name"] + "-2"
            sig_env = kubelet_env(sig_spec["containers"][0],
                                  {"fields": {"metadata.name": "t-huddle-6f7d8-abcde", "status.hostIP": "127.0.0.1"}},
                                  secrets, dict(shared, HUDDLE_HTTP_ADDR=f"127.0.0.1:{sig_http}",
                                                HUDDLE_DATA_DIR=work))
            relay_pod = {"fields": {"metadata.name": relay_name, "status.hostIP": "127.0.0.1",
                                    "metadata.labels['apps.kubernetes.io/pod-index']": "2"}}
            relay_env = kubelet_env(relay_spec["containers"][0], relay_pod, secrets,
                                    dict(shared, HUDDLE_HTTP_ADDR=f"0.0.0.0:{relay_http}", HUDDLE_DATA_DIR=work,
                                         RELAY_UDP_PORT=str(free_udp_ports(2))))
            with Server(argv_of(sig_spec["containers"][0], dict(sig_env, PATH=path)), clean_env(**sig_env, PATH=path),
                        sig_http, "signaling") as sig, \
                 Server(argv_of(relay_spec["containers"][0], dict(relay_env, PATH=path)),
                        clean_env(**relay_env, PATH=path), relay_http, "relay") as relay:
                if sig.wait_ready() and relay.wait_ready():
                    expected_url = f"https://rtc.example.com/relay-nodes/{relay_name}"
                    announced = ""
                    for _ in range(30):
                        announced = subprocess.run(["redis-cli", "-p", str(redis_port), "HVALS", "huddle:relays"],
                                                   capture_output=True, text=True).stdout
                        if expected_url in announced:
                            break
                        time.sleep(0.2)
                    if check(expected_url in announced, f"relay 2 did not announce {expected_url}: {announced!r}"):
                        print(f"   signaling worker and relay 2: ready; the relay announced {expected_url}")
        finally:
            os.killpg(redis.pid, signal.SIGTERM)
            redis.wait()
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- main


def main():
    check_image()
    scenarios = [None] + sorted(
        os.path.join(CHART, "ci", f) for f in os.listdir(os.path.join(CHART, "ci")) if f.endswith("-values.yaml"))
    for values_file in scenarios:
        where = os.path.relpath(values_file, ROOT) if values_file else "default values"
        section(f"helm template ({where}): Kubernetes {', '.join(KUBE_VERSIONS)} schemas (strict), the chart's promises")
        docs = render(values_file)
        validate_schemas(docs, where)
        check_promises(docs, values_of(values_file), where)
        print(f"   {len(docs)} manifests: " + ", ".join(sorted({d['kind'] for d in docs})))
    check_refusals()
    run_containers()
    if failures:
        print(f"\n{len(failures)} deployment check(s) failed:", file=sys.stderr)
        for f in failures:
            print(f" - {f}", file=sys.stderr)
        sys.exit(1)
    print("deployment checks: all passed")


if __name__ == "__main__":
    main()
