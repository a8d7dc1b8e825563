{{/* Names, labels, images and the environment every Orate process shares. */}}

{{- define "orate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "orate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "orate.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* Labels of every object; pass (dict "root" $ "component" "api"). */}}
{{- define "orate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "orate.selectorLabels" . }}
{{- with .root.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "orate.selectorLabels" -}}
app.kubernetes.io/name: orate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image of a service: the override if set, else <registry>/<service>:<tag>-<variant>;
pass (dict "root" $ "service" "orchestrator" "override" ""). */}}
{{- define "orate.image" -}}
{{- $g := .root.Values.global -}}
{{- if .override -}}
{{- .override -}}
{{- else -}}
{{- printf "%s/%s:%s-%s" $g.imageRegistry .service (default .root.Chart.AppVersion $g.imageTag) $g.imageVariant -}}
{{- end -}}
{{- end -}}

{{- define "orate.redisUrlEnv" -}}
{{- $r := .Values.redis -}}
{{- if $r.urlSecret.name }}
- name: ORATE_REDIS__URL
  valueFrom:
    secretKeyRef: {name: {{ $r.urlSecret.name }}, key: {{ $r.urlSecret.key }}}
{{- else }}
{{- $auth := "" }}
{{- if $r.passwordSecret.name }}
{{- $auth = ":$(ORATE_REDIS_PASSWORD)@" }}
- name: ORATE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $r.passwordSecret.name }}, key: {{ $r.passwordSecret.key }}}
{{- end }}
- name: ORATE_REDIS__URL
  value: {{ printf "%s://%s%s:%d/%d" (ternary "rediss" "redis" $r.tls) $auth (required "redis.host is required when redis.urlSecret.name is empty" $r.host) (int $r.port) (int $r.db) | quote }}
{{- end }}
{{- end -}}

{{/* The settings every Orate process reads (shared.settings.OrateSettings), from values and Secrets. */}}
{{- define "orate.env" -}}
{{- $v := .Values -}}
- name: ORATE_KAFKA__BOOTSTRAP_SERVERS
  value: {{ tpl $v.kafka.bootstrapServers . | quote }}
- name: ORATE_KAFKA__TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
- name: ORATE_KAFKA__PARTITIONS
  value: {{ $v.kafka.partitions | quote }}
- name: ORATE_KAFKA__FETCH_WAIT_MAX_MS
  value: {{ $v.kafka.fetchWaitMaxMs | quote }}
# Kafka holds an empty fetch until records arrive, so consumers need not pause (the embedded broker does).
- name: ORATE_KAFKA__IDLE_FETCH_INTERVAL_MS
  value: "0"
{{- if $v.kafka.sasl.enabled }}
- name: ORATE_KAFKA__SECURITY_PROTOCOL
  value: {{ $v.kafka.sasl.securityProtocol | quote }}
- name: ORATE_KAFKA__SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: ORATE_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ required "kafka.sasl.existingSecret is required with SASL" $v.kafka.sasl.existingSecret }}, key: {{ $v.kafka.sasl.usernameKey }}}
- name: ORATE_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $v.kafka.sasl.existingSecret }}, key: {{ $v.kafka.sasl.passwordKey }}}
{{- end }}
{{- include "orate.redisUrlEnv" . }}
- name: ORATE_ARTIFACTS__BACKEND
  value: {{ $v.artifacts.backend | quote }}
{{- if eq $v.artifacts.backend "s3" }}
- name: ORATE_ARTIFACTS__S3_BUCKET
  value: {{ $v.artifacts.s3.bucket | quote }}
- name: ORATE_ARTIFACTS__S3_PREFIX
  value: {{ $v.artifacts.s3.prefix | quote }}
- name: ORATE_ARTIFACTS__S3_REGION
  value: {{ $v.artifacts.s3.region | quote }}
{{- with $v.artifacts.s3.endpointUrl }}
- name: ORATE_ARTIFACTS__S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.artifacts.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: AWS_ACCESS_KEY_ID}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: AWS_SECRET_ACCESS_KEY}
{{- end }}
{{- else }}
- name: ORATE_ARTIFACTS__ROOT
  value: /var/lib/orate/artifacts
{{- end }}
- name: ORATE_DEPLOYMENTS_FILE
  value: /etc/orate/deployments.yaml
- name: ORATE_LOG_LEVEL
  value: {{ $v.global.logLevel | quote }}
{{- end -}}

{{/* Where the runners and the API reach the model servers: one Service per model. */}}
{{- define "orate.tritonUrl" -}}
{{- printf "%s-%s-triton:%d" (include "orate.fullname" .root) .service (int .root.Values.triton.grpcPort) -}}
{{- end -}}
{{- define "orate.rayServeUrl" -}}
{{- printf "http://%s-%s-serve-svc:%d" (include "orate.fullname" .root) .service (int .root.Values.ray.servePort) -}}
{{- end -}}

{{- define "orate.podSecurityContext" -}}
runAsNonRoot: true
{{- toYaml .Values.podSecurityContext | nindent 0 }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "orate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Volumes every Orate pod mounts: the deployments file, a writable /tmp, artifacts on a filesystem. */}}
{{- define "orate.volumes" -}}
- name: deployments
  configMap: {name: {{ include "orate.fullname" . }}-deployments}
- name: tmp
  emptyDir: {sizeLimit: 1Gi}
{{- if eq .Values.artifacts.backend "filesystem" }}
- name: artifacts
  persistentVolumeClaim: {claimName: {{ required "artifacts.filesystem.claimName is required with the filesystem backend" .Values.artifacts.filesystem.claimName }}}
{{- end }}
{{- end -}}

{{- define "orate.volumeMounts" -}}
- {name: deployments, mountPath: /etc/orate, readOnly: true}
- {name: tmp, mountPath: /tmp}
{{- if eq .Values.artifacts.backend "filesystem" }}
- {name: artifacts, mountPath: /var/lib/orate/artifacts}
{{- end }}
{{- end -}}

{{- define "orate.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* GPU requests of a model: pass (dict "root" $ "model" $m). */}}
{{- define "orate.modelResources" -}}
{{- $res := deepCopy .model.resources -}}
{{- if gt (int .model.gpus) 0 -}}
{{- $gpu := dict .root.Values.global.gpuResourceName (int .model.gpus) -}}
{{- $_ := set $res "limits" (merge (default dict $res.limits) $gpu) -}}
{{- $_ := set $res "requests" (merge (default dict $res.requests) $gpu) -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/* exec probe command: GET /metrics on loopback at the given port. */}}
{{- define "orate.metricsProbe" -}}
[python, -c, "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{ . }}/metrics', timeout=4)"]
{{- end -}}

{{/* Init container that copies a checkpoint folder from S3 (the orchestrator image has boto3) into the
"checkpoint" volume; the credentials are the artifact store's. Pass (dict "root" $ "model" $m). */}}
{{- define "orate.checkpointInit" -}}
{{- $s3 := .root.Values.artifacts.s3 -}}
- name: checkpoint
  image: {{ include "orate.image" (dict "root" .root "service" "orchestrator" "override" .root.Values.global.orchestratorImage) }}
  imagePullPolicy: {{ .root.Values.global.imagePullPolicy }}
  command:
    - python
    - -c
    - |
      import sys, boto3, os
      from pathlib import Path
      bucket, _, prefix = sys.argv[1].removeprefix("s3://").partition("/")
      s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None)
      for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
          for item in page.get("Contents", []):
              target = Path("/var/lib/orate/checkpoint", item["Key"][len(prefix):].lstrip("/"))
              target.parent.mkdir(parents=True, exist_ok=True)
              s3.download_file(bucket, item["Key"], str(target))
    - {{ .model.checkpointS3Uri | quote }}
  env:
    - {name: AWS_DEFAULT_REGION, value: {{ $s3.region | quote }}}
    {{- with $s3.endpointUrl }}
    - {name: S3_ENDPOINT_URL, value: {{ . | quote }}}
    {{- end }}
    {{- with $s3.existingSecret }}
    - name: AWS_ACCESS_KEY_ID
      valueFrom:
        secretKeyRef: {name: {{ . }}, key: AWS_ACCESS_KEY_ID}
    - name: AWS_SECRET_ACCESS_KEY
      valueFrom:
        secretKeyRef: {name: {{ . }}, key: AWS_SECRET_ACCESS_KEY}
    {{- end }}
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {cpu: "1", memory: 512Mi}
  securityContext:
    {{- include "orate.containerSecurityContext" .root | nindent 4 }}
  volumeMounts:
    - {name: checkpoint, mountPath: /var/lib/orate/checkpoint}
{{- end -}}

{{/* A NetworkPolicy egress rule's `to:` from a list of CIDRs (none: any address). */}}
{{- define "orate.cidrs" -}}
{{- if . }}
  to:
  {{- range . }}
    - ipBlock: {cidr: {{ . }}}
  {{- end }}
{{- end }}
{{- end -}}
