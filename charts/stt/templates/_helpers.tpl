{{/*
Chart name, truncated to 63 characters (DNS label).
*/}}
{{- define "stt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name, so the
release "convene-stt" gets the Service "convene-stt" that the convene chart points at.
*/}}
{{- define "stt.fullname" -}}
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
{{- define "stt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "stt.labels" -}}
helm.sh/chart: {{ include "stt.chart" . }}
{{ include "stt.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: convene
app.kubernetes.io/component: speech-to-text
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "stt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Service account name.
*/}}
{{- define "stt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stt.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "stt.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Name of the model cache claim.
*/}}
{{- define "stt.claimName" -}}
{{- default (printf "%s-models" (include "stt.fullname" .)) .Values.modelCache.pvc.existingClaim }}
{{- end }}

{{/*
Environment shared by the server and the preload init container.
*/}}
{{- define "stt.env" -}}
- name: HF_HUB_CACHE
  value: {{ .Values.modelCache.mountPath | quote }}
{{- with .Values.model.name }}
- name: WHISPER__MODEL
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
