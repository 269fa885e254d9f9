#!/usr/bin/env bash
# size: one render-then-check pass over the same rendered objects; each check is a numbered section.
# Renders every kustomize target under deploy/k8s and validates the result:
#   1. `kubectl kustomize` (kustomize v5) renders base and each overlay;
#   2. core Kubernetes kinds: schema-checked by PyPI kubernetes-validate (strict,
#      pinned Kubernetes version); a core kind it has no schema for is an error;
#   3. CRD kinds it cannot check (KEDA ScaledObject/TriggerAuthentication, Strimzi
#      KafkaTopic, Prometheus Operator PrometheusRule/ServiceMonitor): structural
#      checks plus the cross-resource rules that matter in production, e.g.
#      ScaledObject maxReplicaCount <= partitions of its topic in the same render;
#   4. every metric in the PrometheusRule and the Grafana dashboard is one
#      README.md lists (Operations → Metrics), and the dashboard JSON parses.
# Exit status is non-zero with a message naming the overlay and resource on any
# failure. Offline after the one-time pip install; idempotent; leaves no files
# except the cached validator under .local/ (gitignored).
#
# Usage: deploy/validate.sh            (env: K8S_VERSION, default 1.30.0)
set -euo pipefail

DEPLOY="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$DEPLOY/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.30.0}"
KV_VERSION="1.37.0"
KV_DIR="$ROOT/.local/kubernetes-validate"
TARGETS=(base overlays/staging overlays/production)

die() { echo "validate.sh: FAIL: $*" >&2; exit 1; }

KUBECTL="${KUBECTL:-$(command -v kubectl || true)}"
[[ -n "$KUBECTL" && -x "$KUBECTL" ]] \
    || die "kubectl not found (need kubectl with built-in kustomize v5, e.g. Debian's /usr/bin/kubectl)"
KUSTOMIZE_VERSION="$("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')"
[[ "$KUSTOMIZE_VERSION" == v5* ]] \
    || die "$KUBECTL has kustomize '${KUSTOMIZE_VERSION:-none}', need v5"
command -v python3 >/dev/null || die "python3 not found"

if ! PYTHONPATH="$KV_DIR" python3 -c "
import sys, kubernetes_validate, kubernetes_validate.version as v, yaml
sys.exit(v.__version__ != '$KV_VERSION')" 2>/dev/null; then
    echo "installing kubernetes-validate==$KV_VERSION into $KV_DIR"
    rm -rf "$KV_DIR"
    python3 -m pip install --quiet --root-user-action=ignore --target "$KV_DIR" \
        "kubernetes-validate==$KV_VERSION" \
        || die "cannot install kubernetes-validate==$KV_VERSION from PyPI"
fi
export PYTHONPATH="$KV_DIR${PYTHONPATH:+:$PYTHONPATH}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

failed=0
for target in "${TARGETS[@]}"; do
    name="${target//\//_}"
    rendered="$WORK/$name.yaml"
    if ! "$KUBECTL" kustomize "$DEPLOY/k8s/$target" >"$rendered" 2>"$WORK/$name.err"; then
        cat "$WORK/$name.err" >&2
        echo "validate.sh: FAIL: kubectl kustomize deploy/k8s/$target" >&2
        failed=1
        continue
    fi
    # Structural + cross-resource checks; writes the core kinds to $name.core.yaml.
    if ! python3 - "$target" "$rendered" "$WORK/$name.core.yaml" "$ROOT/README.md" <<'PY'
import json, re, sys
import yaml

target, rendered, core_out, readme = sys.argv[1:5]
errors = []

def err(res, msg):
    where = f"{res.get('kind', '?')}/{res.get('metadata', {}).get('name', '?')}" if isinstance(res, dict) else str(res)
    errors.append(f"{target}: {where}: {msg}")

docs = [d for d in yaml.safe_load_all(open(rendered)) if d]

# ---- metric names README.md documents (Operations -> "- Metrics:" bullet) ----
text = open(readme, encoding="utf-8").read()
m = re.search(r"^- Metrics:(.*?)(?=^- |\Z|^#)", text, re.S | re.M)
if not m:
    print(f"{target}: README.md has no '- Metrics:' bullet to check metric names against", file=sys.stderr)
    sys.exit(1)
README_METRICS = set(re.findall(r"`(patroli_[a-z0-9_]+)", m.group(1)))
if len(README_METRICS) < 5:
    print(f"{target}: parsed only {sorted(README_METRICS)} from README.md's metrics list", file=sys.stderr)
    sys.exit(1)
# Series Prometheus itself synthesises for every target.
BUILTIN_SERIES = {"up"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "inf", "nan", "atan2", "le"}

def metric_names(expr):
    """Metric names an expression selects (good enough for our PromQL)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                       # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+\S+", " ", e)
    names = set()
    for mm in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        word, call = mm.group(1), mm.group(2)
        if call or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names

def check_metrics(res, where, expr):
    names = metric_names(expr)
    if not names:
        err(res, f"{where}: expression selects no metric: {expr!r}")
    for n in sorted(names):
        base = n
        for s in HIST_SUFFIXES:
            if n.endswith(s) and n[: -len(s)] in README_METRICS:
                base = n[: -len(s)]
        if base not in README_METRICS and base not in BUILTIN_SERIES:
            err(res, f"{where}: metric {n!r} is not in README.md's metrics list {sorted(README_METRICS)}")

# ---- split: CRDs we check here, everything else goes to kubernetes-validate ----
CRDS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "KafkaTopic": "kafka.strimzi.io/v1beta2",
    "KafkaUser": "kafka.strimzi.io/v1beta2",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}
core, by_kind = [], {}
for d in docs:
    if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") \
            or not isinstance(d.get("metadata"), dict) or not d["metadata"].get("name"):
        err(d if isinstance(d, dict) else {}, "document without apiVersion/kind/metadata.name")
        continue
    by_kind.setdefault(d["kind"], []).append(d)
    if d["kind"] in CRDS:
        if d["apiVersion"] != CRDS[d["kind"]]:
            err(d, f"apiVersion {d['apiVersion']!r}, expected {CRDS[d['kind']]!r}")
        if not isinstance(d.get("spec"), dict):
            err(d, "no spec")
    else:
        core.append(d)
with open(core_out, "w") as f:
    yaml.safe_dump_all(core, f, sort_keys=False)

def one(kind, name=None):
    found = [d for d in by_kind.get(kind, []) if name is None or d["metadata"]["name"] == name]
    return found[0] if found else None

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

REQUIRED = ["ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
            "NetworkPolicy", "ScaledObject", "TriggerAuthentication", "KafkaTopic",
            "KafkaUser", "PrometheusRule", "ServiceMonitor"]
for kind in REQUIRED:
    if kind not in by_kind:
        errors.append(f"{target}: no {kind} rendered")

# ---- classifier config (ConfigMap the Deployment loads) ----
deploy = one("Deployment", "patroli-classifier")
cm = one("ConfigMap", "patroli-classifier-config")
conf = dict(cm.get("data", {})) if cm else {}
if cm is None:
    errors.append(f"{target}: ConfigMap patroli-classifier-config missing")
ints = ["PATROLI_BATCH__MAX_POSTS", "PATROLI_BATCH__MAX_TOKENS", "PATROLI_BATCH__MAX_WAIT_MS",
        "PATROLI_MAX_LEN", "PATROLI_MAX_TEXT_BYTES", "PATROLI_SESSION_TIMEOUT_MS",
        "PATROLI_MAX_POLL_INTERVAL_MS", "PATROLI_DRAIN_TIMEOUT_MS", "PATROLI_THREADS"]
for k in ints:
    if k in conf and not re.fullmatch(r"[1-9][0-9]*", str(conf[k])):
        err(cm, f"{k}={conf[k]!r} is not a positive integer")
delivery = conf.get("PATROLI_DELIVERY", "at-least-once")
if delivery not in ("at-least-once", "exactly-once"):
    err(cm, f"PATROLI_DELIVERY={delivery!r} (at-least-once | exactly-once)")
for k in ("PATROLI_LOG_JSON",):
    if k in conf and conf[k] not in ("true", "false"):
        err(cm, f"{k}={conf[k]!r} is not true/false")
input_topics = [conf.get("PATROLI_POSTS_TOPIC", "posts.raw.v1"),
                conf.get("PATROLI_COMPLAINTS_TOPIC", "complaints.v1")]
for k in ("PATROLI_POSTS_TOPIC", "PATROLI_COMPLAINTS_TOPIC", "PATROLI_OUTPUT_TOPIC", "PATROLI_DLQ_TOPIC",
          "PATROLI_CLAIMS_TOPIC"):
    if k in conf and not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", str(conf[k])):
        err(cm, f"{k}={conf[k]!r} is not a valid Kafka topic name")
if "PATROLI_KAFKA__EXTRA" in conf:
    try:
        extra = json.loads(conf["PATROLI_KAFKA__EXTRA"])
        assert isinstance(extra, dict) and all(isinstance(v, str) for v in extra.values())
    except Exception:
        err(cm, "PATROLI_KAFKA__EXTRA must be a JSON object of string values (librdkafka properties)")
protocol = conf.get("PATROLI_KAFKA__SECURITY_PROTOCOL", "plaintext").lower()
if protocol not in ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"):
    err(cm, f"PATROLI_KAFKA__SECURITY_PROTOCOL={protocol!r}")
if protocol.startswith("sasl") and not conf.get("PATROLI_KAFKA__SASL_MECHANISM"):
    err(cm, "SASL protocol without PATROLI_KAFKA__SASL_MECHANISM")

# ---- Deployment ----
pod_labels, container, env = {}, {}, {}
if deploy:
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    if not matches(spec["selector"].get("matchLabels"), pod_labels):
        err(deploy, "selector does not match the pod template labels")
    containers = {c["name"]: c for c in pod.get("containers", [])}
    container = containers.get("classifier") or {}
    if not container:
        err(deploy, "no container named classifier")
    env = {e["name"]: e for e in container.get("env", [])}
    for ref in container.get("envFrom", []):
        cmref = ref.get("configMapRef", {}).get("name")
        if cmref and not one("ConfigMap", cmref):
            err(deploy, f"envFrom ConfigMap {cmref!r} is not rendered")
    if container.get("args") != ["serve", "classifier"]:
        err(deploy, f"args {container.get('args')!r}, expected ['serve', 'classifier']")
    res = container.get("resources", {})
    if not res.get("limits") or res.get("requests") != res.get("limits"):
        err(deploy, "resources: requests must equal limits (Guaranteed QoS)")
    cpu = str(res.get("limits", {}).get("cpu", ""))
    threads = env.get("PATROLI_THREADS", {}).get("value") or conf.get("PATROLI_THREADS")
    if not re.fullmatch(r"[1-9][0-9]*", cpu):
        err(deploy, f"cpu limit {cpu!r} should be whole CPUs (threads are sized to it)")
    elif threads != cpu:
        err(deploy, f"PATROLI_THREADS={threads!r} differs from the CPU limit {cpu!r}")
    candle = env.get("CANDLE_NUM_THREADS", {}).get("value") or conf.get("CANDLE_NUM_THREADS")
    if cpu and candle != cpu:
        err(deploy, f"CANDLE_NUM_THREADS={candle!r} differs from the CPU limit {cpu!r}")
    drain_ms = int(conf.get("PATROLI_DRAIN_TIMEOUT_MS", "30000"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace * 1000 <= drain_ms + 10000:
        err(deploy, f"terminationGracePeriodSeconds={grace} must exceed the drain timeout ({drain_ms} ms) with margin")
    probes = {p: (container.get(p) or {}).get("httpGet", {}).get("path")
              for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}:
        err(deploy, f"probes {probes}, expected liveness/startup /healthz and readiness /readyz")
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        err(deploy, "runAsNonRoot is not set")
    if not csc.get("readOnlyRootFilesystem"):
        err(deploy, "readOnlyRootFilesystem is not set")
    if csc.get("allowPrivilegeEscalation") is not False:
        err(deploy, "allowPrivilegeEscalation must be false")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        err(deploy, "capabilities.drop must contain ALL")
    if (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        err(deploy, "seccompProfile must be RuntimeDefault")
    sa = pod.get("serviceAccountName")
    sa_res = one("ServiceAccount", sa) if sa else None
    if not sa_res:
        err(deploy, f"serviceAccountName {sa!r} is not rendered")
    elif sa_res.get("automountServiceAccountToken") is not False and pod.get("automountServiceAccountToken") is not False:
        err(deploy, "service account token is automounted")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    http_port = int(conf.get("PATROLI_HTTP_ADDR", "127.0.0.1:9464").rsplit(":", 1)[1])
    if conf.get("PATROLI_HTTP_ADDR", "").startswith("127."):
        err(cm, "PATROLI_HTTP_ADDR binds loopback: probes and Prometheus cannot reach it")
    if ports.get("metrics") != http_port:
        err(deploy, f"container port 'metrics' {ports.get('metrics')} != PATROLI_HTTP_ADDR port {http_port}")
    tx = env.get("PATROLI_TRANSACTIONAL_ID", {})
    if delivery == "exactly-once" and \
            tx.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        err(deploy, "exactly-once needs PATROLI_TRANSACTIONAL_ID from the pod name (downward API metadata.name)")
    if protocol.startswith("sasl") and \
            "secretKeyRef" not in env.get("PATROLI_KAFKA__SASL_PASSWORD", {}).get("valueFrom", {}):
        err(deploy, "PATROLI_KAFKA__SASL_PASSWORD must come from a Secret (secretKeyRef)")
    ca = conf.get("PATROLI_KAFKA__SSL_CA_LOCATION")
    if ca:
        mounts = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])]
        if not any(ca.startswith(mp) for mp in mounts):
            err(deploy, f"PATROLI_KAFKA__SSL_CA_LOCATION={ca} is not under any volumeMount")

# ---- selectors of Service / PDB / NetworkPolicy / ServiceMonitor ----
svc = one("Service", "patroli-classifier")
if svc and not matches(svc["spec"].get("selector"), pod_labels):
    err(svc, "selector does not match the classifier pods")
if svc and not any(p.get("name") == "metrics" for p in svc["spec"].get("ports", [])):
    err(svc, "no port named metrics")
# Each service (classifier, takedown ...) has its own PDB, NetworkPolicy and ServiceMonitor:
# each must select the pods of some rendered Deployment / some metrics Service.
all_pod_labels = [d["spec"]["template"]["metadata"].get("labels", {}) for d in by_kind.get("Deployment", [])]
for pdb in by_kind.get("PodDisruptionBudget", []):
    if not any(matches(pdb["spec"].get("selector", {}).get("matchLabels"), pl) for pl in all_pod_labels):
        err(pdb, "selector does not match the pods of any rendered Deployment")
    if pdb["spec"].get("maxUnavailable") != 1:
        err(pdb, "maxUnavailable should be 1")
for np in by_kind.get("NetworkPolicy", []):
    if not any(matches(np["spec"].get("podSelector", {}).get("matchLabels"), pl) for pl in all_pod_labels):
        err(np, "podSelector does not match the pods of any rendered Deployment")
    if set(np["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        err(np, "policyTypes must be Ingress and Egress")
    egress_ports = {p.get("port") for r in np["spec"].get("egress", []) for p in r.get("ports", [])}
    broker_ports = {int(b.rsplit(":", 1)[1]) for b in conf.get("PATROLI_KAFKA__BROKERS", "x:9092").split(",")}
    if not broker_ports <= egress_ports or 53 not in egress_ports:
        err(np, f"egress ports {sorted(egress_ports)} must include DNS (53) and the broker ports {sorted(broker_ports)}")
for sm in by_kind.get("ServiceMonitor", []):
    if not any(matches(sm["spec"].get("selector", {}).get("matchLabels"), s["metadata"].get("labels", {}))
               for s in by_kind.get("Service", [])):
        err(sm, "selector does not match any metrics Service")
    if not any(e.get("port") == "metrics" for e in sm["spec"].get("endpoints", [])):
        err(sm, "no endpoint on port 'metrics'")

# ---- gateway (deploy/k8s/base/gateway.yaml) ----
gw = one("Deployment", "patroli-gateway")
gw_cm = one("ConfigMap", "patroli-gateway-config")
if gw is None or gw_cm is None:
    errors.append(f"{target}: the gateway Deployment or its ConfigMap is not rendered")
else:
    gconf = gw_cm.get("data", {})
    gpod = gw["spec"]["template"]["spec"]
    glabels = gw["spec"]["template"]["metadata"].get("labels", {})
    gc = {c["name"]: c for c in gpod.get("containers", [])}.get("gateway") or {}
    if gc.get("args") != ["serve", "gateway"]:
        err(gw, f"args {gc.get('args')!r}, expected ['serve', 'gateway']")
    gres = gc.get("resources", {})
    if not gres.get("limits") or gres.get("requests") != gres.get("limits"):
        err(gw, "resources: requests must equal limits (Guaranteed QoS)")
    gports = {p.get("name"): p.get("containerPort") for p in gc.get("ports", [])}
    for port_name, key in (("api", "PATROLI_LISTEN_ADDR"), ("metrics", "PATROLI_HTTP_ADDR")):
        addr = gconf.get(key, "127.0.0.1:0")
        if addr.startswith("127."):
            err(gw_cm, f"{key} binds loopback")
        if gports.get(port_name) != int(addr.rsplit(":", 1)[1]):
            err(gw, f"container port {port_name!r} does not match {key}={addr}")
    gprobes = {p: (gc.get(p) or {}).get("httpGet", {}).get("path")
               for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    if gprobes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}:
        err(gw, f"probes {gprobes}, expected liveness/startup /healthz and readiness /readyz")
    gcsc = gc.get("securityContext", {})
    if not gcsc.get("readOnlyRootFilesystem") or gcsc.get("allowPrivilegeEscalation") is not False \
            or "ALL" not in gcsc.get("capabilities", {}).get("drop", []):
        err(gw, "container must be read-only, without privilege escalation, all capabilities dropped")
    keys_file = gconf.get("PATROLI_KEYS_FILE", "")
    gmounts = [m for m in gc.get("volumeMounts", []) if keys_file.startswith(m["mountPath"].rstrip("/") + "/")]
    if not gmounts:
        err(gw, f"PATROLI_KEYS_FILE={keys_file!r} is not under any volumeMount")
    elif any("subPath" in m for m in gmounts):
        err(gw, "the keys Secret is mounted with subPath: rotated keys would never reach the pod")
    if gconf.get("PATROLI_MAX_TEXT_BYTES", "10000") != conf.get("PATROLI_MAX_TEXT_BYTES", "10000"):
        err(gw_cm, "PATROLI_MAX_TEXT_BYTES differs from the classifier's: the gateway would accept posts the classifier dead-letters")
    gsvc = one("Service", "patroli-gateway")
    if not gsvc or not matches(gsvc["spec"].get("selector"), glabels):
        err(gw, "no Service patroli-gateway selecting the gateway pods")
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"):
        res = one(kind, "patroli-gateway")
        if res is None:
            errors.append(f"{target}: no {kind} patroli-gateway")
            continue
        sel = res["spec"].get("podSelector") or res["spec"].get("selector") or {}
        want = gsvc["metadata"].get("labels", {}) if kind == "ServiceMonitor" and gsvc else glabels
        if not matches(sel.get("matchLabels"), want):
            err(res, "selector does not match the gateway")

# ---- Strimzi KafkaTopics ----
topics = {}
for t in by_kind.get("KafkaTopic", []):
    s = t.get("spec", {})
    name = s.get("topicName") or t["metadata"]["name"]
    if name in topics:
        err(t, f"topic {name!r} declared twice")
    topics[name] = t
    if not t["metadata"].get("labels", {}).get("strimzi.io/cluster"):
        err(t, "no strimzi.io/cluster label (the Topic Operator would ignore it)")
    parts, rf = s.get("partitions"), s.get("replicas")
    if not is_int(parts) or parts < 1:
        err(t, f"spec.partitions {parts!r} must be a positive integer")
    if not is_int(rf) or rf < 1:
        err(t, f"spec.replicas {rf!r} must be a positive integer")
    cfg = s.get("config", {}) or {}
    if is_int(rf):
        misr = int(cfg.get("min.insync.replicas", 1))
        if rf >= 3 and not (2 <= misr < rf):
            err(t, f"min.insync.replicas={misr} with replicas={rf}: want 2 <= min.insync < replicas")
        if misr > rf:
            err(t, f"min.insync.replicas={misr} > replicas={rf}: every produce would fail")
    for k, v in cfg.items():
        if not isinstance(v, (str, int)):
            err(t, f"config {k} has a non-scalar value")
needed = list(input_topics) + [conf.get("PATROLI_OUTPUT_TOPIC", "posts.scored.v1"),
                               conf.get("PATROLI_DLQ_TOPIC", "posts.dlq.v1")]
needed.append("complaints.contacts.v1")  # written by the gateway
claims_topic = conf.get("PATROLI_CLAIMS_TOPIC", "claims.v1")
if claims_topic:
    needed.append(claims_topic)
for n in needed:
    if topics and n not in topics:
        errors.append(f"{target}: topic {n!r} used by the classifier has no KafkaTopic")
claims = topics.get(claims_topic)
if claims and claims["spec"].get("config", {}).get("cleanup.policy") != "compact":
    err(claims, "the claims topic must be compacted: classifiers read it whole at start-up")
dlq = topics.get(conf.get("PATROLI_DLQ_TOPIC", "posts.dlq.v1"))
if dlq and int(dlq["spec"].get("config", {}).get("retention.ms", 0)) < 30 * 86400 * 1000:
    err(dlq, "DLQ retention.ms should be at least 30 days")

# ---- reviewer decision keys and the audit chain ----
def secrets_of(d):
    vols = d["spec"]["template"]["spec"].get("volumes", []) or []
    return {v["secret"].get("secretName") for v in vols if "secret" in v}
dash, td = one("Deployment", "patroli-dashboard"), one("Deployment", "patroli-takedown")
for d in by_kind.get("Deployment", []):
    if "patroli-decision-signing-key" in secrets_of(d) and d is not dash:
        err(d, "mounts the decision signing key: only the dashboard may sign reviewer decisions")
if dash and "patroli-decision-signing-key" not in secrets_of(dash):
    err(dash, "does not mount patroli-decision-signing-key: the review desk would refuse every decision")
if td and "patroli-decision-verifying-keys" not in secrets_of(td):
    err(td, "does not mount patroli-decision-verifying-keys: the takedown service would not start")
audit = topics.get("takedown.audit.v1")
if audit and audit["spec"].get("partitions") != 1:
    err(audit, "takedown.audit.v1 must have one partition: the takedown service writes one hash chain")
if audit and str(audit["spec"].get("config", {}).get("retention.ms")) != "-1":
    err(audit, "takedown.audit.v1 must keep every record (retention.ms -1): the chain starts at its genesis")

# ---- KEDA ScaledObject (the cross-checks that matter) ----
for so in by_kind.get("ScaledObject", []):
    s = so["spec"]
    ref = s.get("scaleTargetRef", {})
    if ref.get("kind", "Deployment") != "Deployment" or not one("Deployment", ref.get("name")):
        err(so, f"scaleTargetRef {ref} is not a rendered Deployment")
    mn, mx = s.get("minReplicaCount"), s.get("maxReplicaCount")
    if not (is_int(mn) and is_int(mx) and 1 <= mn <= mx):
        err(so, f"need integer 1 <= minReplicaCount ({mn!r}) <= maxReplicaCount ({mx!r})")
        continue
    if deploy and is_int(deploy["spec"].get("replicas")) and deploy["spec"]["replicas"] > mx:
        err(deploy, f"replicas {deploy['spec']['replicas']} > ScaledObject maxReplicaCount {mx}")
    triggers = s.get("triggers") or []
    if not triggers:
        err(so, "no triggers")
    for tr in triggers:
        md = tr.get("metadata", {})
        if tr.get("type") != "kafka":
            continue
        for k in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
            if not md.get(k):
                err(so, f"kafka trigger without metadata.{k}")
        if md.get("lagThreshold") and not re.fullmatch(r"[1-9][0-9]*", str(md["lagThreshold"])):
            err(so, f"lagThreshold {md['lagThreshold']!r} must be a positive integer string")
        for k, v in md.items():
            if not isinstance(v, str):
                err(so, f"trigger metadata.{k} must be a string (KEDA metadata is map[string]string)")
        topic = md.get("topic")
        if topic not in topics:
            err(so, f"trigger topic {topic!r} has no KafkaTopic in this render")
        else:
            parts = topics[topic]["spec"].get("partitions")
            if is_int(parts) and mx > parts:
                err(so, f"maxReplicaCount {mx} > {parts} partitions of {topic}: "
                        f"pods beyond the partition count get no partition and never become ready")
            if deploy and is_int(deploy["spec"].get("replicas")) and is_int(parts) \
                    and deploy["spec"]["replicas"] > parts:
                err(deploy, f"replicas {deploy['spec']['replicas']} > {parts} partitions of {topic}")
        if topic and input_topics and topic not in input_topics:
            err(so, f"trigger topic {topic!r} is not one the classifier consumes {input_topics}")
        if conf and md.get("consumerGroup") != conf.get("PATROLI_GROUP_ID", "patroli-classifier"):
            err(so, f"consumerGroup {md.get('consumerGroup')!r} != PATROLI_GROUP_ID {conf.get('PATROLI_GROUP_ID')!r}")
        if conf and md.get("bootstrapServers") != conf.get("PATROLI_KAFKA__BROKERS"):
            err(so, f"bootstrapServers {md.get('bootstrapServers')!r} != PATROLI_KAFKA__BROKERS {conf.get('PATROLI_KAFKA__BROKERS')!r}")
        want_sasl = protocol.startswith("sasl")
        want_tls = protocol.endswith("ssl")
        if want_sasl != (md.get("sasl", "none") not in ("none", "")):
            err(so, f"trigger sasl={md.get('sasl')!r} but the classifier uses {protocol}")
        if want_tls != (md.get("tls", "disable") == "enable"):
            err(so, f"trigger tls={md.get('tls')!r} but the classifier uses {protocol}")
        auth = tr.get("authenticationRef", {}).get("name")
        ta = one("TriggerAuthentication", auth) if auth else None
        if want_sasl and not ta:
            err(so, f"authenticationRef {auth!r} is not a rendered TriggerAuthentication")
        if ta:
            params = {r.get("parameter") for r in
                      ta["spec"].get("secretTargetRef", []) + ta["spec"].get("configMapTargetRef", [])}
            if want_sasl and not {"username", "password"} <= params:
                err(ta, "SASL needs username and password parameters")
            if want_tls and "ca" not in params:
                err(ta, "TLS to the brokers needs the ca parameter")

# ---- Kafka principals (kafkausers.yaml is generated from patroli_contracts::access) ----
# Every Deployment connects as its own KafkaUser, with the password from the Secret Strimzi
# makes for that user; no two Deployments share one; KEDA has its own; and an overlay
# points every Deployment at the same secured cluster as the classifier.
users = {u["metadata"]["name"]: u for u in by_kind.get("KafkaUser", [])}
for u in users.values():
    uspec = u.get("spec") or {}
    if (uspec.get("authentication") or {}).get("type") != "scram-sha-512":
        err(u, "authentication.type must be scram-sha-512")
    authz = uspec.get("authorization") or {}
    if authz.get("type") != "simple" or not authz.get("acls"):
        err(u, "authorization must be type simple with ACLs")
    for acl in authz.get("acls") or []:
        if (acl.get("resource") or {}).get("name") == "*" or "All" in (acl.get("operations") or []):
            err(u, f"ACL {acl} grants a wildcard; list each topic and operation")
    if target != "base" and not u["metadata"].get("labels", {}).get("strimzi.io/cluster"):
        err(u, "no strimzi.io/cluster label: no User Operator would create it")
def env_of(d):
    cs = d["spec"]["template"]["spec"].get("containers", [])
    return ({e["name"]: e for e in cs[0].get("env", [])} if cs else {}), cs
def config_of(cs):
    data = {}
    for c in cs[:1]:
        for ref in c.get("envFrom", []):
            cmr = one("ConfigMap", (ref.get("configMapRef") or {}).get("name"))
            data.update((cmr or {}).get("data") or {})
    return data
owner = {}
for d in by_kind.get("Deployment", []):
    denv, cs = env_of(d)
    dname = d["metadata"]["name"]
    for e in denv.values():
        if ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == "patroli-kafka-credentials":
            err(d, f"{e['name']} uses the shared Secret patroli-kafka-credentials; each service has its own KafkaUser")
    user = denv.get("PATROLI_KAFKA__SASL_USERNAME", {}).get("value")
    secret = (denv.get("PATROLI_KAFKA__SASL_PASSWORD", {}).get("valueFrom") or {}).get("secretKeyRef") or {}
    if user not in users:
        err(d, f"PATROLI_KAFKA__SASL_USERNAME={user!r} does not name a rendered KafkaUser")
    elif (secret.get("name"), secret.get("key")) != (user, "password"):
        err(d, f"PATROLI_KAFKA__SASL_PASSWORD must come from Secret {user!r} key 'password' (Strimzi's Secret of its KafkaUser), not {secret}")
    if user in owner:
        err(d, f"shares the Kafka user {user!r} with Deployment {owner[user]}")
    owner.setdefault(user, dname)
    dconf = config_of(cs)
    if target != "base":
        for k in ("PATROLI_KAFKA__BROKERS", "PATROLI_KAFKA__SECURITY_PROTOCOL", "PATROLI_KAFKA__SASL_MECHANISM",
                  "PATROLI_KAFKA__SSL_CA_LOCATION"):
            if dconf.get(k) != conf.get(k):
                err(d, f"{k}={dconf.get(k)!r} but the classifier's is {conf.get(k)!r}: the overlay must patch every Deployment's Kafka connection")
        dca = dconf.get("PATROLI_KAFKA__SSL_CA_LOCATION")
        if dca and cs and not any(dca.startswith(m["mountPath"].rstrip("/") + "/") for m in cs[0].get("volumeMounts", [])):
            err(d, f"PATROLI_KAFKA__SSL_CA_LOCATION={dca} is not under any volumeMount")
for ta in by_kind.get("TriggerAuthentication", []):
    refs = {r.get("parameter"): r for r in ta["spec"].get("secretTargetRef", []) + ta["spec"].get("configMapTargetRef", [])}
    user_ref = refs.get("username") or {}
    ucm = one("ConfigMap", user_ref.get("name")) if user_ref in ta["spec"].get("configMapTargetRef", []) else None
    keda_user = ((ucm or {}).get("data") or {}).get(user_ref.get("key"))
    if keda_user not in users:
        err(ta, f"username {keda_user!r} (from a ConfigMap) does not name a rendered KafkaUser")
    elif keda_user in owner:
        err(ta, f"KEDA shares the Kafka user {keda_user!r} with Deployment {owner[keda_user]}")
    pw = refs.get("password") or {}
    if (pw.get("name"), pw.get("key")) != (keda_user, "password"):
        err(ta, f"password must come from Secret {keda_user!r} key 'password'")

# ---- PrometheusRule ----
for pr in by_kind.get("PrometheusRule", []):
    groups = pr["spec"].get("groups") or []
    if not groups:
        err(pr, "no rule groups")
    for g in groups:
        if not g.get("name") or not g.get("rules"):
            err(pr, "a group without name or rules")
        for r in g.get("rules", []):
            rid = r.get("alert") or r.get("record")
            if not rid or not isinstance(r.get("expr"), str) or not r["expr"].strip():
                err(pr, f"rule {rid!r} needs alert/record and a non-empty expr")
                continue
            if r["expr"].count("(") != r["expr"].count(")"):
                err(pr, f"{rid}: unbalanced parentheses")
            if r.get("alert") and r.get("labels", {}).get("severity") not in ("info", "warning", "critical"):
                err(pr, f"{rid}: labels.severity must be info/warning/critical")
            if r.get("for") and not re.fullmatch(r"([0-9]+[smhd])+", r["for"]):
                err(pr, f"{rid}: bad 'for' duration {r['for']!r}")
            check_metrics(pr, rid, r["expr"])

# ---- Grafana dashboard(s) ----
dashboards = [c for c in by_kind.get("ConfigMap", [])
              if c["metadata"].get("labels", {}).get("grafana_dashboard")]
if not dashboards:
    errors.append(f"{target}: no ConfigMap labelled grafana_dashboard")
for c in dashboards:
    for key, raw in (c.get("data") or {}).items():
        try:
            dash = json.loads(raw)
        except ValueError as e:
            err(c, f"{key} is not valid JSON: {e}")
            continue
        panels = dash.get("panels") or []
        if not dash.get("uid") or not dash.get("title") or not panels:
            err(c, f"{key}: dashboard needs uid, title and panels")
        ids = [p.get("id") for p in panels]
        if len(ids) != len(set(ids)):
            err(c, f"{key}: duplicate panel ids")
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    check_metrics(c, f"{key} panel {p.get('title')!r}", t["expr"])

if errors:
    print("\n".join("  " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"{target}: {len(docs)} resources; structural and cross-resource checks passed "
      f"({len(topics)} topics, {sum(len(g.get('rules', [])) for p in by_kind.get('PrometheusRule', []) for g in p['spec'].get('groups', []))} rules)")
PY
    then
        echo "validate.sh: FAIL: checks on deploy/k8s/$target (see above)" >&2
        failed=1
        continue
    fi
    # Schema validation of the core kinds; "no schema" (WARN) means a wrong
    # apiVersion/kind and counts as a failure.
    if ! python3 -m kubernetes_validate -k "$K8S_VERSION" --strict --quiet \
            "$WORK/$name.core.yaml" >"$WORK/$name.kv" 2>&1 \
            || grep -q . "$WORK/$name.kv"; then
        sed "s|$WORK/$name.core.yaml|deploy/k8s/$target|" "$WORK/$name.kv" >&2
        echo "validate.sh: FAIL: kubernetes-validate (Kubernetes $K8S_VERSION, strict) on deploy/k8s/$target" >&2
        failed=1
        continue
    fi
    echo "$target: core resources valid against Kubernetes $K8S_VERSION (strict)"
done

if [[ "$failed" != 0 ]]; then
    echo "validate.sh: FAILED" >&2
    exit 1
fi
echo "validate.sh: OK (${TARGETS[*]})"
