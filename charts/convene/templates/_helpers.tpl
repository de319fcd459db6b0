{{/*
Chart name, truncated to 63 characters (DNS label).
*/}}
{{- define "convene.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name.
*/}}
{{- define "convene.fullname" -}}
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

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "convene.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "convene.labels" -}}
helm.sh/chart: {{ include "convene.chart" . }}
{{ include "convene.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: convene
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "convene.selectorLabels" -}}
app.kubernetes.io/name: {{ include "convene.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Service account name.
*/}}
{{- define "convene.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "convene.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "convene.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Name of the prompts ConfigMap.
*/}}
{{- define "convene.promptsConfigMap" -}}
{{- printf "%s-prompts" (include "convene.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the CONVENE_HOME claim.
*/}}
{{- define "convene.claimName" -}}
{{- default (printf "%s-home" (include "convene.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
Base URL of the remote Whisper server: whisperRemote.url, else the stt chart's Service
"<release>-stt" (or whisperRemote.serviceName) on whisperRemote.port.
*/}}
{{- define "convene.whisperRemoteUrl" -}}
{{- if .Values.whisperRemote.url }}
{{- .Values.whisperRemote.url | trimSuffix "/" }}
{{- else }}
{{- $host := default (printf "%s-stt" .Release.Name | trunc 63 | trimSuffix "-") .Values.whisperRemote.serviceName }}
{{- with .Values.whisperRemote.namespace }}
{{- $host = printf "%s.%s.svc" $host . }}
{{- end }}
{{- printf "http://%s:%v" $host .Values.whisperRemote.port }}
{{- end }}
{{- end }}

{{/*
The prompts ConfigMap's data as YAML (file name -> contents): the files of prompts/ (the
chart's symlink to the repo's prompts/), then prompts.overrides, whole files. With
whisperRemote.enabled, pipeline.yaml is parsed and stt.provider set to whisper-remote.
*/}}
{{- define "convene.promptsData" -}}
{{- range $key, $_ := .Values.prompts }}
{{- if not (has $key (list "enabled" "overrides")) }}
{{- fail (printf "prompts.%s: prompts takes enabled and overrides only; whole files go in prompts.overrides" $key) }}
{{- end }}
{{- end }}
{{- $data := dict }}
{{- range $path, $_ := .Files.Glob "prompts/*.yaml" }}
{{- $_ := set $data (base $path) ($.Files.Get $path) }}
{{- end }}
{{- if not $data }}
{{- fail "the chart has no prompts/*.yaml: charts/convene/prompts must link to the repo's prompts/" }}
{{- end }}
{{- range $file, $text := .Values.prompts.overrides }}
{{- $_ := set $data $file $text }}
{{- end }}
{{- if and .Values.whisperRemote.enabled (hasKey $data "pipeline.yaml") }}
{{- $pipeline := fromYaml (get $data "pipeline.yaml") }}
{{- if hasKey $pipeline "Error" }}
{{- fail (printf "pipeline.yaml: %s" (get $pipeline "Error")) }}
{{- end }}
{{- $stt := get $pipeline "stt" | default dict }}
{{- $_ := set $stt "provider" "whisper-remote" }}
{{- $_ := set $pipeline "stt" $stt }}
{{- $_ := set $data "pipeline.yaml" (toYaml $pipeline) }}
{{- end }}
{{- toYaml $data }}
{{- end }}
