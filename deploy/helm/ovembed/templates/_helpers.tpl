{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "ovembed.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, with the chart name unless it already holds it. */}}
{{- define "ovembed.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ovembed.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of the serving pods: Deployment, Service, PDB and ServiceMonitor select by these. */}}
{{- define "ovembed.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ovembed.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Labels of every object; the component label is added per object. */}}
{{- define "ovembed.commonLabels" -}}
helm.sh/chart: {{ include "ovembed.chart" . }}
app.kubernetes.io/name: {{ include "ovembed.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ovembed.labels" -}}
{{ include "ovembed.commonLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "ovembed.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "ovembed.exportImage" -}}
{{- printf "%s:%s" .Values.exportImage.repository (default (printf "%s-export" .Chart.AppVersion) .Values.exportImage.tag) }}
{{- end }}

{{/* The serving container's image: the export image in Hub mode (the pod exports), else the serving image. */}}
{{- define "ovembed.podImage" -}}
{{- if eq .Values.models.source "hub" }}{{ include "ovembed.exportImage" . }}{{ else }}{{ include "ovembed.image" . }}{{ end }}
{{- end }}

{{/* The claim holding the model repository. */}}
{{- define "ovembed.claimName" -}}
{{- default (printf "%s-models" (include "ovembed.fullname" .)) .Values.models.repository.existingClaim }}
{{- end }}

{{/* One flag value as a string: whole numbers stay integers (values arrive as float64). */}}
{{- define "ovembed.flagValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
The `ovembed serve` arguments, one YAML list item per line. Derived settings first, then
serve.flags (sorted by key), then serve.extraArgs.
*/}}
{{- define "ovembed.serveArgs" -}}
{{- $managed := list "config_path" "model_path" "rest_port" "rest_bind_address" "port" "grpc_bind_address" "source_model" "model_repository_path" "model_name" "weight_format" "task" "revision" "hf_token" "metrics_enable" "no_metrics" "api_key_file" }}
{{- range $key, $value := .Values.serve.flags }}
{{- if has (replace "-" "_" $key) $managed }}
{{- fail (printf "serve.flags.%s is set by the chart: use ports, models, metrics or apiKey instead" $key) }}
{{- end }}
{{- end }}
- serve
{{- if eq .Values.models.source "hub" }}
- --source_model
- {{ required "models.hub.sourceModel is required when models.source is hub" .Values.models.hub.sourceModel | quote }}
- --model_repository_path
- {{ .Values.models.mountPath | quote }}
{{- with .Values.models.hub.modelName }}
- --model_name
- {{ . | quote }}
{{- end }}
- --weight_format
- {{ .Values.models.hub.weightFormat | quote }}
- --task
- {{ .Values.models.hub.task | quote }}
{{- with .Values.models.hub.revision }}
- --revision
- {{ . | quote }}
{{- end }}
{{- else }}
- --config_path
- {{ printf "%s/%s" (trimSuffix "/" .Values.models.mountPath) .Values.models.repository.configFile | quote }}
{{- end }}
- --rest_bind_address
- "0.0.0.0"
- --rest_port
- {{ .Values.ports.http | int | quote }}
{{- if gt (int .Values.ports.grpc) 0 }}
- --grpc_bind_address
- "0.0.0.0"
- --port
- {{ .Values.ports.grpc | int | quote }}
{{- end }}
{{- if not .Values.metrics.enabled }}
- --no-metrics
{{- end }}
{{- range $key, $value := .Values.serve.flags }}
{{- if kindIs "bool" $value }}
{{- if $value }}
- {{ printf "--%s" $key | quote }}
{{- end }}
{{- else if not (kindIs "invalid" $value) }}
- {{ printf "--%s" $key | quote }}
- {{ include "ovembed.flagValue" $value | quote }}
{{- end }}
{{- end }}
{{- range .Values.serve.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* serve.flags.graceful_timeout, or ovembed's default (30 s). */}}
{{- define "ovembed.gracefulTimeout" -}}
{{- $value := 30.0 }}
{{- if hasKey .Values.serve.flags "graceful_timeout" }}{{ $value = index .Values.serve.flags "graceful_timeout" | float64 }}{{ end }}
{{- $value }}
{{- end }}

{{/* Default PromQL of the KEDA triggers: the release's pods as prometheus-operator labels them. */}}
{{- define "ovembed.promSelector" -}}
{{- printf "namespace=\"%s\",service=\"%s\"" .Release.Namespace (include "ovembed.fullname" .) }}
{{- end }}

{{- define "ovembed.queueDepthQuery" -}}
{{- default (printf "sum(ovembed_queue_depth{%s})" (include "ovembed.promSelector" .)) .Values.autoscaling.keda.queueDepth.query }}
{{- end }}

{{- define "ovembed.requestRateQuery" -}}
{{- default (printf "sum(rate(ovembed_requests_total{%s,model!=\"\"}[2m]))" (include "ovembed.promSelector" .)) .Values.autoscaling.keda.requestRate.query }}
{{- end }}

{{/* The export Job's pod template: one init container per model, in order, then a summary. */}}
{{- define "ovembed.exportPod" -}}
{{- $job := .Values.exportJob }}
{{- $mount := .Values.models.mountPath }}
metadata:
  labels:
    {{- include "ovembed.commonLabels" . | nindent 4 }}
    app.kubernetes.io/component: export
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  initContainers:
    {{- range $model := required "exportJob.models lists the models to export" $job.models }}
    - name: {{ printf "export-%s" ($model.name | lower | replace "_" "-" | replace "." "-") | trunc 63 | trimSuffix "-" }}
      image: {{ include "ovembed.exportImage" $ | quote }}
      imagePullPolicy: {{ $.Values.exportImage.pullPolicy }}
      args:
        - export
        - --source_model
        - {{ required "exportJob.models[].sourceModel is required" $model.sourceModel | quote }}
        - --model_name
        - {{ required "exportJob.models[].name is required" $model.name | quote }}
        - --model_repository_path
        - {{ $mount | quote }}
        - --weight_format
        - {{ default "int8" $model.weightFormat | quote }}
        {{- range $model.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- include "ovembed.exportContainerCommon" $ | nindent 6 }}
    {{- end }}
  containers:
    - name: summary
      image: {{ include "ovembed.exportImage" . | quote }}
      imagePullPolicy: {{ .Values.exportImage.pullPolicy }}
      command:
        - python
        - -c
        - import sys; print(open(sys.argv[1]).read())
        - {{ printf "%s/%s" (trimSuffix "/" $mount) .Values.models.repository.configFile | quote }}
      resources:
        requests:
          cpu: 10m
          memory: 32Mi
        limits:
          memory: 64Mi
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: models
          mountPath: {{ $mount }}
          readOnly: true
  volumes:
    - name: models
      persistentVolumeClaim:
        claimName: {{ include "ovembed.claimName" . }}
    - name: cache
      emptyDir: {}
    - name: tmp
      emptyDir: {}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* env, resources, securityContext and mounts shared by the export Job's containers. */}}
{{- define "ovembed.exportContainerCommon" -}}
env:
  - name: HF_HOME
    value: /cache/huggingface
  - name: HOME
    value: /tmp
  {{- with .Values.exportJob.tokenSecret.name }}
  - name: HF_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.exportJob.tokenSecret.key }}
  {{- end }}
  {{- with .Values.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
resources:
  {{- toYaml .Values.exportJob.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: models
    mountPath: {{ .Values.models.mountPath }}
  - name: cache
    mountPath: /cache
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* Repository mode: an init container that waits for config.json (a fresh volume is empty until the
export Job or you fill it; ovembed serve exits without it, and a crash-looping pod backs off for
minutes after the file appears). */}}
{{- define "ovembed.waitForRepository" -}}
- name: wait-for-repository
  image: {{ include "ovembed.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - python
    - -c
    - |
      import os, sys, time
      while not os.path.exists(sys.argv[1]):
          print("waiting for", sys.argv[1], flush=True)
          time.sleep(5)
    - {{ printf "%s/%s" (trimSuffix "/" .Values.models.mountPath) .Values.models.repository.configFile | quote }}
  resources:
    requests:
      cpu: 10m
      memory: 32Mi
    limits:
      memory: 64Mi
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: models
      mountPath: {{ .Values.models.mountPath }}
      readOnly: true
{{- end }}

{{/* Checks across values that the schema cannot express; included once, by deployment.yaml. */}}
{{- define "ovembed.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if and (ne $a.mode "none") (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) exceeds autoscaling.maxReplicas (%d)" (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "float64" $pdb.minAvailable) }}
{{- $least := eq $a.mode "none" | ternary (int .Values.replicaCount) (int $a.minReplicas) }}
{{- if ge (int $pdb.minAvailable) $least }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below the replica count (%d), or no pod can ever be evicted (node drains hang): raise the replicas or set podDisruptionBudget.enabled=false" (int $pdb.minAvailable) $least) }}
{{- end }}
{{- end }}
{{- end }}
