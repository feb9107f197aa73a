{{/*
The chart's name (app.kubernetes.io/name), erpsync-operator unless overridden.
*/}}
{{- define "erpsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource's name: the release name (so that `helm install
erpsync` names things as config/default does: erpsync-controller-manager).
*/}}
{{- define "erpsync.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "erpsync.manager" -}}
{{- include "erpsync.fullname" . }}-controller-manager
{{- end -}}

{{- define "erpsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "erpsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end -}}

{{- define "erpsync.labels" -}}
{{ include "erpsync.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: erpsync-operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "erpsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "erpsync.manager" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "erpsync.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "erpsync.sinkSecretName" -}}
{{- default (printf "%s-sink" (include "erpsync.fullname" .)) .Values.sink.secretName -}}
{{- end -}}

{{/*
Memory of the manager container in MiB: 128 + 112 x concurrent syncs
(config/manager/manager.yaml explains the figures), unless set.
*/}}
{{- define "erpsync.memoryMiB" -}}
{{- $set := int .Values.resources.memoryMiB -}}
{{- if gt $set 0 -}}
{{- $set -}}
{{- else -}}
{{- add 128 (mul 112 (int .Values.concurrency.concurrentSyncs)) -}}
{{- end -}}
{{- end -}}

{{- define "erpsync.goMemLimitMiB" -}}
{{- div (mul (int (include "erpsync.memoryMiB" .)) (int .Values.goMemLimitPercent)) 100 -}}
{{- end -}}

{{- define "erpsync.webhookPublicURL" -}}
{{- if .Values.webhookReceiver.publicURL -}}
{{- .Values.webhookReceiver.publicURL -}}
{{- else if .Values.webhookReceiver.ingress.enabled -}}
{{- printf "https://%s" .Values.webhookReceiver.ingress.host -}}
{{- end -}}
{{- end -}}

{{/*
Refuses values the manager would refuse at start, so that a mistake fails
`helm install` rather than a pod.
*/}}
{{- define "erpsync.validate" -}}
{{- $kind := .Values.sink.kind -}}
{{- if not (has $kind (list "postgres" "webhook" "sqlite")) -}}
{{- fail (printf "sink.kind %q: want postgres, webhook or sqlite" $kind) -}}
{{- end -}}
{{- if and (eq $kind "webhook") (not .Values.sink.webhook.url) -}}
{{- fail "sink.kind webhook needs sink.webhook.url (the CRM's ingestion URL)" -}}
{{- end -}}
{{- if and (eq $kind "webhook") (not .Values.sink.webhook.allowHTTP) (not (hasPrefix "https://" .Values.sink.webhook.url)) -}}
{{- fail (printf "sink.webhook.url %q is not https (set sink.webhook.allowHTTP only for a receiver on loopback or in a sidecar)" .Values.sink.webhook.url) -}}
{{- end -}}
{{- if eq $kind "sqlite" -}}
{{- if not .Values.sink.sqlite.existingClaim -}}
{{- fail "sink.kind sqlite needs sink.sqlite.existingClaim (a PersistentVolumeClaim for /data)" -}}
{{- end -}}
{{- if or .Values.sharding.enabled (gt (int .Values.replicas) 1) -}}
{{- fail "sink.kind sqlite runs one replica only: set replicas 1 and sharding.enabled false, or use postgres" -}}
{{- end -}}
{{- end -}}
{{- if lt (int .Values.replicas) 1 -}}
{{- fail (printf "replicas %v: want 1 or more" .Values.replicas) -}}
{{- end -}}
{{- if lt (int .Values.concurrency.concurrentSyncs) 1 -}}
{{- fail (printf "concurrency.concurrentSyncs %v: want 1 or more" .Values.concurrency.concurrentSyncs) -}}
{{- end -}}
{{- if lt (int .Values.concurrency.maxSyncsInProgress) 0 -}}
{{- fail "concurrency.maxSyncsInProgress: want 0 (the manager's default) or more" -}}
{{- end -}}
{{- if lt (int .Values.concurrency.maxSyncsPerNamespace) 1 -}}
{{- fail "concurrency.maxSyncsPerNamespace: want 1 or more" -}}
{{- end -}}
{{- $pct := int .Values.goMemLimitPercent -}}
{{- if or (lt $pct 50) (gt $pct 100) -}}
{{- fail (printf "goMemLimitPercent %v: want 50 to 100" .Values.goMemLimitPercent) -}}
{{- end -}}
{{- if and .Values.webhookReceiver.publicURL (not (hasPrefix "https://" .Values.webhookReceiver.publicURL)) -}}
{{- fail (printf "webhookReceiver.publicURL %q: vendors deliver only to https URLs" .Values.webhookReceiver.publicURL) -}}
{{- end -}}
{{- end -}}

{{/*
The manager's arguments (config/manager/manager.yaml and
config/sharded/statefulset.yaml).
*/}}
{{- define "erpsync.args" -}}
{{- if .Values.sharding.enabled }}
- --shards={{ int .Values.replicas }}
- --leader-elect=false
{{- else if .Values.leaderElection.enabled }}
- --leader-elect
{{- else }}
- --leader-elect=false
{{- end }}
- --health-probe-bind-address=:8081
- --metrics-bind-address=:{{ int .Values.metrics.port }}
- --concurrent-syncs={{ int .Values.concurrency.concurrentSyncs }}
{{- with int .Values.concurrency.maxSyncsInProgress }}
- --max-syncs-in-progress={{ . }}
{{- end }}
- --max-syncs-per-namespace={{ int .Values.concurrency.maxSyncsPerNamespace }}
- --sink={{ .Values.sink.kind }}
{{- if eq .Values.sink.kind "postgres" }}
- --sink-postgres-dsn-file=/etc/erpsync/sink/dsn
- --sink-postgres-schema={{ .Values.sink.postgres.schema }}
{{- with int .Values.sink.postgres.maxConns }}
- --sink-postgres-max-conns={{ . }}
{{- end }}
{{- else if eq .Values.sink.kind "webhook" }}
- --sink-webhook-url={{ .Values.sink.webhook.url }}
- --sink-webhook-key-file=/etc/erpsync/sink/key
{{- if .Values.sink.webhook.allowHTTP }}
- --sink-webhook-allow-http
{{- end }}
{{- else if eq .Values.sink.kind "sqlite" }}
- --sink-sqlite-path=/data/erpsync.db
{{- end }}
- --webhook-bind-address=:{{ int .Values.webhookReceiver.containerPort }}
{{- with include "erpsync.webhookPublicURL" . }}
- --webhook-public-url={{ . }}
{{- end }}
{{- with .Values.webhookReceiver.trustedProxies }}
- --webhook-trusted-proxies={{ join "," . }}
{{- end }}
{{- with .Values.watch.labelSelector }}
- --watch-label-selector={{ . }}
{{- end }}
{{- with .Values.watch.namespaces }}
- --watch-namespaces={{ join "," . }}
{{- end }}
{{- with .Values.watch.namespaceSelector }}
- --watch-namespace-selector={{ . }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{/*
The manager's pod template, shared by the Deployment and the StatefulSet.
*/}}
{{- define "erpsync.podTemplate" -}}
metadata:
  annotations:
    kubectl.kubernetes.io/default-container: manager
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "erpsync.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "erpsync.serviceAccountName" . }}
  terminationGracePeriodSeconds: 30
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # Spread the replicas over nodes and zones; ScheduleAnyway keeps a
  # single-node cluster and a rollout's surge pod schedulable.
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "erpsync.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "erpsync.selectorLabels" . | nindent 8 }}
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: manager
    image: {{ include "erpsync.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command:
    - /manager
    args:
    {{- include "erpsync.args" . | trim | nindent 4 }}
    env:
    {{- if .Values.sharding.enabled }}
    # The StatefulSet names its pods <name>-<ordinal>: the ordinal is this
    # replica's shard.
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- end }}
    # Quota counters, company claims (and shard Leases) live in this namespace.
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    # The Go runtime collects harder as the heap nears this, well before the
    # kernel's OOM kill at the limit.
    - name: GOMEMLIMIT
      value: {{ include "erpsync.goMemLimitMiB" . }}MiB
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    ports:
    - containerPort: {{ int .Values.metrics.port }}
      name: https-metrics
      protocol: TCP
    - containerPort: 8081
      name: health
      protocol: TCP
    - containerPort: {{ int .Values.webhookReceiver.containerPort }}
      name: webhooks
      protocol: TCP
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      runAsNonRoot: true
      capabilities:
        drop:
        - ALL
    livenessProbe:
      httpGet:
        path: /healthz
        port: health
      initialDelaySeconds: 15
      periodSeconds: 20
    readinessProbe:
      httpGet:
        path: /readyz
        port: health
      initialDelaySeconds: 5
      periodSeconds: 10
    # Memory: 128 MiB + 112 MiB x concurrent syncs (measured; see
    # config/manager/manager.yaml), request = limit.
    resources:
      requests:
        cpu: {{ .Values.resources.cpu.request | quote }}
        memory: {{ include "erpsync.memoryMiB" . }}Mi
      limits:
        {{- with .Values.resources.cpu.limit }}
        cpu: {{ . | quote }}
        {{- end }}
        memory: {{ include "erpsync.memoryMiB" . }}Mi
    volumeMounts:
    {{- if has .Values.sink.kind (list "postgres" "webhook") }}
    - name: sink
      mountPath: /etc/erpsync/sink
      readOnly: true
    {{- else if eq .Values.sink.kind "sqlite" }}
    - name: data
      mountPath: /data
    {{- end }}
    - name: tmp
      mountPath: /tmp
  volumes:
  {{- if has .Values.sink.kind (list "postgres" "webhook") }}
  # The CRM sink's Secret: key "dsn" (postgres, and "ca.crt" for a private
  # CA) or "key" (webhook).
  - name: sink
    secret:
      secretName: {{ include "erpsync.sinkSecretName" . }}
      defaultMode: 0440
  {{- else if eq .Values.sink.kind "sqlite" }}
  - name: data
    persistentVolumeClaim:
      claimName: {{ .Values.sink.sqlite.existingClaim }}
  {{- end }}
  # Scratch space (the root filesystem is read-only).
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}
