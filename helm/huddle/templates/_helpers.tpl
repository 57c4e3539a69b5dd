{{/* Names ---------------------------------------------------------------------------- */}}

{{- define "huddle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "huddle.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The relays' StatefulSet; its pods are <this>-0, <this>-1, … (kept short for Service names). */}}
{{- define "huddle.relayName" -}}
{{- printf "%s-relay" (include "huddle.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "huddle.secretName" -}}
{{- printf "%s-secrets" (include "huddle.fullname" .) -}}
{{- end -}}

{{- define "huddle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "huddle.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "huddle.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels ---------------------------------------------------------------------------- */}}

{{- define "huddle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "huddle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "huddle.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "huddle.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: huddle
{{- end -}}

{{/* Derived settings ------------------------------------------------------------------ */}}

{{/* The base URL clients reach Huddle at: publicUrl, else the ingress host, else "". */}}
{{- define "huddle.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl | trimSuffix "/" -}}
{{- else if and .Values.ingress.enabled .Values.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/* The path prefix the chart's Ingress routes to relay pod NAME. */}}
{{- define "huddle.relayPathPrefix" -}}
{{- printf "/relay-nodes/%s" . -}}
{{- end -}}

{{/* The relay's --public-url (may hold $(POD_NAME), expanded by Kubernetes). */}}
{{- define "huddle.relayPublicUrl" -}}
{{- if .Values.relay.publicUrl -}}
{{- .Values.relay.publicUrl | trimSuffix "/" -}}
{{- else -}}
{{- printf "%s%s" (include "huddle.publicUrl" .) (include "huddle.relayPathPrefix" "$(POD_NAME)") -}}
{{- end -}}
{{- end -}}

{{- define "huddle.usesPostgres" -}}
{{- if or .Values.database.url .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "huddle.usesRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.bundled.enabled -}}true{{- end -}}
{{- end -}}

{{/* The TURN URIs handed to clients, comma-separated. */}}
{{- define "huddle.turnUrls" -}}
{{- if .Values.turn.urls -}}
{{- join "," .Values.turn.urls -}}
{{- else if .Values.turn.coturn.enabled -}}
{{- $c := .Values.turn.coturn -}}
{{- $urls := list (printf "turn:%s:%d?transport=udp" $c.host (int $c.listeningPort)) (printf "turn:%s:%d?transport=tcp" $c.host (int $c.listeningPort)) -}}
{{- if $c.tls.enabled -}}
{{- $urls = append $urls (printf "turns:%s:%d?transport=tcp" $c.host (int $c.tls.port)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
{{- end -}}

{{/* Does the chart's own Secret hold anything? */}}
{{- define "huddle.needsSecret" -}}
{{- if or (and .Values.database.url (not .Values.database.existingSecret)) (and .Values.redis.url (not .Values.redis.existingSecret)) (and .Values.turn.enabled (not .Values.turn.existingSecret)) (and .Values.bootstrapApp.enabled (not .Values.bootstrapApp.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{- define "huddle.drainGraceSeconds" -}}
{{- add (div (add (int .Values.drain.timeoutMs) 999) 1000) (int .Values.drain.extraGraceSeconds) -}}
{{- end -}}

{{/* Checks across fields that the JSON schema cannot express; each says what to change. */}}
{{- define "huddle.validate" -}}
{{- $split := eq .Values.role "split" -}}
{{- if and .Values.database.url .Values.database.existingSecret -}}
{{- fail "database: set url or existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.redis.url .Values.redis.existingSecret -}}
{{- fail "redis: set url or existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.redis.bundled.enabled (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "redis: bundled.enabled deploys a Redis of its own; unset redis.url/existingSecret or disable it" -}}
{{- end -}}
{{- if and .Values.database.url (not (hasPrefix "postgres" .Values.database.url)) -}}
{{- fail "database.url: a postgres:// URL (SQLite is what an empty url gives, role all only)" -}}
{{- end -}}
{{- if $split -}}
{{- if not (include "huddle.usesPostgres" .) -}}
{{- fail "role split: every pod shares one PostgreSQL; set database.url or database.existingSecret" -}}
{{- end -}}
{{- if not (include "huddle.usesRedis" .) -}}
{{- fail "role split: signaling and relays share rooms through Redis; set redis.url, redis.existingSecret or redis.bundled.enabled" -}}
{{- end -}}
{{- if and (not .Values.relay.publicUrl) (not (and .Values.ingress.enabled .Values.ingress.host)) -}}
{{- fail "role split: browsers reach each relay's HTTP at its own URL; enable the ingress (ingress.enabled, ingress.host) or set relay.publicUrl" -}}
{{- end -}}
{{- else -}}
{{- if .Values.signaling.autoscaling.enabled -}}
{{- fail "signaling.autoscaling: role all runs exactly one pod (it holds the relay); use role split to scale out" -}}
{{- end -}}
{{- end -}}
{{- if and (include "huddle.usesRedis" .) (not (include "huddle.publicUrl" .)) -}}
{{- fail "with Redis, nodes announce their URL to each other: set publicUrl, or ingress.enabled and ingress.host" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) -}}
{{- fail "ingress.enabled: set ingress.host (e.g. huddle.example.com)" -}}
{{- end -}}
{{- $relays := ternary (int .Values.relay.replicas) 1 $split -}}
{{- if and (eq .Values.relay.expose "loadBalancer") (lt (len .Values.relay.publicIPs) $relays) -}}
{{- fail (printf "relay.expose loadBalancer: relay.publicIPs needs one reserved IP per relay (%d), which each relay advertises and its Service requests" $relays) -}}
{{- end -}}
{{- if eq .Values.relay.expose "nodePort" -}}
{{- $last := add (int .Values.relay.udpPort) (sub (mul $relays (int .Values.relay.threads)) 1) -}}
{{- if or (lt (int .Values.relay.udpPort) 30000) (gt $last 32767) -}}
{{- fail (printf "relay.expose nodePort: the relays' UDP ports %d-%d must lie within the NodePort range 30000-32767" (int .Values.relay.udpPort) $last) -}}
{{- end -}}
{{- end -}}
{{- if .Values.turn.enabled -}}
{{- if not (include "huddle.turnUrls" .) -}}
{{- fail "turn.enabled: set turn.urls (an existing TURN server) or turn.coturn.enabled" -}}
{{- end -}}
{{- if and .Values.turn.secret .Values.turn.existingSecret -}}
{{- fail "turn: set secret or existingSecret, not both" -}}
{{- end -}}
{{- if and (not .Values.turn.coturn.enabled) (not .Values.turn.secret) (not .Values.turn.existingSecret) -}}
{{- fail "turn.urls: set turn.secret or turn.existingSecret to your TURN server's static-auth-secret (the chart generates one only for the coturn it deploys)" -}}
{{- end -}}
{{- end -}}
{{- if .Values.turn.coturn.enabled -}}
{{- $c := .Values.turn.coturn -}}
{{- if not .Values.turn.enabled -}}
{{- fail "turn.coturn.enabled: also set turn.enabled, so that Huddle hands out its credentials" -}}
{{- end -}}
{{- if not $c.host -}}
{{- fail "turn.coturn.host: the public name or IP browsers reach coturn at" -}}
{{- end -}}
{{- if gt (int $c.minPort) (int $c.maxPort) -}}
{{- fail "turn.coturn: minPort must not exceed maxPort" -}}
{{- end -}}
{{- if and $c.tls.enabled (not $c.tls.secretName) -}}
{{- fail "turn.coturn.tls.enabled: set tls.secretName (a kubernetes.io/tls Secret for the TURN host)" -}}
{{- end -}}
{{- if eq $c.expose "loadBalancer" -}}
{{- if not $c.externalIP -}}
{{- fail "turn.coturn.expose loadBalancer: set externalIP (the reserved IP of its LoadBalancer, which coturn advertises)" -}}
{{- end -}}
{{- if gt (sub (int $c.maxPort) (int $c.minPort)) 99 -}}
{{- fail "turn.coturn.expose loadBalancer: every relay port is a Service port; keep maxPort-minPort under 100 or use hostNetwork" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pieces of pod specs ---------------------------------------------------------------- */}}

{{- define "huddle.podSecurityContext" -}}
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "huddle.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment shared by every huddle container: store, Redis, logs. */}}
{{- define "huddle.storeEnv" -}}
- name: HUDDLE_DATA_DIR
  value: /var/lib/huddle
{{- if .Values.database.existingSecret }}
- name: HUDDLE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- else if .Values.database.url }}
- name: HUDDLE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "huddle.secretName" . }}
      key: database-url
{{- end }}
{{- end -}}

{{- define "huddle.serveEnv" -}}
{{ include "huddle.storeEnv" . }}
{{- if .Values.redis.existingSecret }}
- name: HUDDLE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else if .Values.redis.url }}
- name: HUDDLE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "huddle.secretName" . }}
      key: redis-url
{{- else if .Values.redis.bundled.enabled }}
- name: HUDDLE_REDIS_URL
  value: {{ printf "redis://%s-redis:6379" (include "huddle.fullname" .) | quote }}
{{- end }}
- name: HUDDLE_DEV
  value: "false"
- name: HUDDLE_LOG
  value: {{ .Values.log.level | quote }}
- name: HUDDLE_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
{{- with .Values.allowedOrigins }}
- name: HUDDLE_ALLOWED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
- name: HUDDLE_DRAIN_TIMEOUT_MS
  value: {{ .Values.drain.timeoutMs | int | quote }}
{{- if .Values.turn.enabled }}
- name: HUDDLE_TURN_URLS
  value: {{ include "huddle.turnUrls" . | quote }}
- name: HUDDLE_TURN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ default (include "huddle.secretName" .) .Values.turn.existingSecret }}
      key: {{ ternary .Values.turn.existingSecretKey "turn-secret" (not (empty .Values.turn.existingSecret)) }}
- name: HUDDLE_TURN_CREDENTIAL_TTL_SECS
  value: {{ .Values.turn.credentialTtlSecs | int | quote }}
{{- end }}
{{- end -}}

{{/* Pod annotations that roll the pods when the chart's Secret changes. */}}
{{- define "huddle.checksums" -}}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* The privileged init container that raises the node's socket buffer limits. */}}
{{- define "huddle.sysctlInit" -}}
{{- $s := .Values.relay.sysctlInit -}}
- name: node-sysctl
  image: {{ printf "%s:%s" $s.image.repository $s.image.tag }}
  imagePullPolicy: {{ $s.image.pullPolicy }}
  # net.core.rmem_max/wmem_max exist only in the node's own network namespace: set there,
  # directly with hostNetwork, else through PID 1's (hostPID) namespace.
  command:
  {{- if eq .Values.relay.expose "hostNetwork" }}
    - sysctl
    - -w
  {{- else }}
    - nsenter
    - -t
    - "1"
    - -n
    - --
    - sysctl
    - -w
  {{- end }}
    - {{ printf "net.core.rmem_max=%d" (int $s.rmemMax) }}
    - {{ printf "net.core.wmem_max=%d" (int $s.wmemMax) }}
  securityContext:
    privileged: true
    runAsUser: 0
    runAsNonRoot: false
  resources:
    requests: {cpu: 10m, memory: 8Mi}
    limits: {memory: 32Mi}
{{- end -}}

{{/* Probes of a huddle container on its "http" port. */}}
{{- define "huddle.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Creates the first app unless it exists (by id, or by name without one). "$$" is
Kubernetes' escape for "$" in commands; the server secret never reaches the log. */}}
{{- define "huddle.bootstrapScript" -}}
set -eu
if [ "$APP_ID" != 0 ]; then
  if huddle app list | grep -q "\"appId\":$APP_ID[,}]"; then
    echo "app $APP_ID exists: nothing to do"; exit 0
  fi
elif huddle app list | grep -qF "\"name\":\"$APP_NAME\""; then
  echo "an app named \"$APP_NAME\" exists: nothing to do"; exit 0
fi
set -- app create --name "$APP_NAME" --secret "$APP_SECRET"
[ "$APP_ID" = 0 ] || set -- "$@" --app-id "$APP_ID"
[ "$MAX_USERS_PER_ROOM" = 0 ] || set -- "$@" --max-users-per-room "$MAX_USERS_PER_ROOM"
if out=$$(huddle "$@" 2>&1); then
  echo "$out" | sed 's/"serverSecret":"[^"]*"/"serverSecret":"<in the Secret>"/'
else
  case "$out" in
    *"already exists"*) echo "app $APP_ID was created meanwhile: nothing to do" ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
fi
{{- end -}}

{{/* The bootstrap container (a hook Job's, or an init container's with SQLite). */}}
{{- define "huddle.bootstrapContainer" -}}
- name: bootstrap-app
  image: {{ include "huddle.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [/bin/sh, -c]
  args:
    - {{ include "huddle.bootstrapScript" . | quote }}
  env:
    {{- include "huddle.storeEnv" . | nindent 4 }}
    - name: APP_NAME
      value: {{ .Values.bootstrapApp.name | quote }}
    - name: APP_ID
      value: {{ .Values.bootstrapApp.appId | int64 | toString | quote }}
    - name: MAX_USERS_PER_ROOM
      value: {{ .Values.bootstrapApp.maxUsersPerRoom | int | quote }}
    - name: APP_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ default (include "huddle.secretName" .) .Values.bootstrapApp.existingSecret }}
          key: {{ ternary .Values.bootstrapApp.existingSecretKey "server-secret" (not (empty .Values.bootstrapApp.existingSecret)) }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  securityContext:
    {{- include "huddle.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.migration.resources | nindent 4 }}
  volumeMounts:
    - name: data
      mountPath: /var/lib/huddle
{{- end -}}
