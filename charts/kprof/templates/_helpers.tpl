{{/* Names, labels and images shared by every template. */}}

{{- define "kprof.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: fullnameOverride, else the release name (plus the chart name unless it contains it). */}}
{{- define "kprof.fullname" -}}
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

{{- define "kprof.operator.fullname" -}}
{{- printf "%s-operator" (include "kprof.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kprof.agent.fullname" -}}
{{- printf "%s-agent" (include "kprof.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kprof.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kprof.labels" -}}
helm.sh/chart: {{ include "kprof.chart" . }}
app.kubernetes.io/name: {{ include "kprof.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kprof
{{- end }}

{{- define "kprof.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kprof.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kprof.operator.labels" -}}
{{ include "kprof.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kprof.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kprof.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "kprof.agent.labels" -}}
{{ include "kprof.labels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "kprof.operator.serviceAccountName" -}}
{{- default (include "kprof.operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "kprof.agent.serviceAccountName" -}}
{{- default (include "kprof.agent.fullname" .) .Values.agent.serviceAccount.name }}
{{- end }}

{{/* The image: <repository>@<digest> when image.digest is set, else <repository>:<tag or appVersion>. */}}
{{- define "kprof.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The agent's image: agent.image.* over image.*; image.digest only when the agent names no repository or tag of its own. */}}
{{- define "kprof.agent.image" -}}
{{- $a := .Values.agent.image }}
{{- $repo := default .Values.image.repository $a.repository }}
{{- $digest := $a.digest }}
{{- if and (not $digest) (not $a.repository) (not $a.tag) }}{{ $digest = .Values.image.digest }}{{ end }}
{{- if $digest }}
{{- printf "%s@%s" $repo $digest }}
{{- else }}
{{- printf "%s:%s" $repo (default (default .Chart.AppVersion .Values.image.tag) $a.tag) }}
{{- end }}
{{- end }}

{{/*
The labels of a pod template: the chart's (which win, so the selector cannot be broken) over the
user's podLabels. Args: dict labels (the chart's, as YAML), podLabels (a list of maps, first wins).
*/}}
{{- define "kprof.podLabels" -}}
{{- $labels := fromYaml .labels }}
{{- range .podLabels }}{{ $labels = merge $labels (deepCopy .) }}{{ end }}
{{- toYaml $labels }}
{{- end }}

{{/* A volume of the operator (spool, profiles): a PersistentVolumeClaim or a size-limited emptyDir. Args: dict root, name, cfg. */}}
{{- define "kprof.operator.volume" -}}
- name: {{ .name }}
{{- if .cfg.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-%s" (include "kprof.operator.fullname" .root) .name) .cfg.persistence.existingClaim }}
{{- else }}
  emptyDir:
    {{- with .cfg.sizeLimit }}
    sizeLimit: {{ . }}
    {{- else }} {}
    {{- end }}
{{- end }}
{{- end }}

{{/*
"true" when the cluster has the securityContext.appArmorProfile field (Kubernetes 1.30). Minor
versions like "30+" (EKS, GKE) count; a build without version information (0.0) is taken as new.
*/}}
{{- define "kprof.appArmorField" -}}
{{- $major := .Capabilities.KubeVersion.Major | trimSuffix "+" }}
{{- $minor := .Capabilities.KubeVersion.Minor | trimSuffix "+" }}
{{- if not (and (regexMatch "^[0-9]+$" $major) (regexMatch "^[0-9]+$" $minor)) }}true
{{- else if or (eq (atoi $major) 0) (gt (atoi $major) 1) (ge (atoi $minor) 30) }}true
{{- end }}
{{- end }}
