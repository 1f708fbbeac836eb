{{/*
Checks across values that values.schema.json cannot express; each failure names the values.
*/}}
{{- define "kprof.validateDefaultConfig" -}}
{{- $d := .Values.defaultConfig }}
{{- if and $d.s3.bucket (or $d.localStorage.path $d.localStorage.prefix $d.localStorage.maxAgeSeconds $d.localStorage.maxBytes) }}
{{- fail "defaultConfig: set s3.bucket or localStorage, not both" }}
{{- end }}
{{- if and $d.s3.kmsKeyID (ne $d.s3.sse "aws:kms") }}
{{- fail "defaultConfig.s3.kmsKeyID: needs defaultConfig.s3.sse aws:kms" }}
{{- end }}
{{- if and (not $d.s3.bucket) (or $d.s3.region $d.s3.prefix $d.s3.endpoint $d.s3.sse $d.s3.kmsKeyID $d.s3.credentialsSecretRef) }}
{{- fail "defaultConfig.s3: bucket is required when other s3 values are set" }}
{{- end }}
{{- /* The CRD's rule (internal/capture/cpuduration.go): a CPU profile ends 5 s before the earliest next round. */}}
{{- $iv := int $d.schedule.intervalSeconds }}
{{- $bound := sub (sub $iv (div (add $iv 9) 10)) 5 }}
{{- if and $d.schedule.enabled (has "cpu" $d.profileTypes) (gt (int $d.cpuProfileDurationSeconds) (int $bound)) }}
{{- fail (printf "defaultConfig.cpuProfileDurationSeconds (%d) must be at most defaultConfig.schedule.intervalSeconds - ceil(intervalSeconds/10) - 5 = %d, so rounds of one pod never overlap; 0 picks min(30, that bound)" (int $d.cpuProfileDurationSeconds) (int $bound)) }}
{{- end }}
{{- end }}

{{- define "kprof.validate" -}}
{{- if .Values.ui.enabled }}
{{- if and .Values.metrics.enabled (eq (int .Values.ui.port) (int .Values.metrics.port)) }}
{{- fail (printf "ui.port (%d) is metrics.port too: the UI and /metrics need different ports" (int .Values.ui.port)) }}
{{- end }}
{{- if eq (int .Values.ui.port) 8081 }}
{{- fail "ui.port (8081): the operator's health probes use 8081" }}
{{- end }}
{{- end }}
{{- if and (or .Values.ui.s3Endpoint .Values.ui.s3Region) (not (hasPrefix "s3://" .Values.ui.store)) }}
{{- fail "ui.s3Endpoint, ui.s3Region: need an s3:// ui.store" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "operator.replicas > 1 needs leaderElection.enabled: replicas without a leader capture every pod more than once" }}
{{- end }}
{{- range $kind := list "podMonitor" "serviceMonitor" }}
{{- if and (get $.Values.agent.metrics $kind).enabled (not $.Values.agent.enabled) }}
{{- fail (printf "agent.metrics.%s.enabled needs agent.enabled" $kind) }}
{{- end }}
{{- end }}
{{- $dd := .Values.agent.consumers.datadog }}
{{- if $dd.enabled }}
{{- if and $dd.agentURL $dd.site }}
{{- fail "agent.consumers.datadog: set agentURL (through the Datadog Agent) or site (agentless), not both" }}
{{- end }}
{{- if and $dd.site (not $dd.apiKeySecret.name) }}
{{- fail "agent.consumers.datadog.site (agentless) needs agent.consumers.datadog.apiKeySecret.name" }}
{{- end }}
{{- end }}
{{- if and .Values.agent.consumers.otlp.enabled (not .Values.agent.consumers.otlp.endpoint) }}
{{- fail "agent.consumers.otlp.enabled needs agent.consumers.otlp.endpoint" }}
{{- end }}
{{- if and .Values.agent.consumers.perfdata.enabled (not .Values.agent.consumers.perfdata.path) }}
{{- fail "agent.consumers.perfdata.enabled needs agent.consumers.perfdata.path" }}
{{- end }}
{{- if and .Values.agent.consumers.pprof.enabled (not .Values.agent.consumers.pprof.path) }}
{{- fail "agent.consumers.pprof.enabled needs agent.consumers.pprof.path" }}
{{- end }}
{{- end }}
