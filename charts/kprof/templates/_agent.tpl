{{/*
The agent's consumer flags: the one place that maps agent.consumers to `kprof agent` flags.
*/}}
{{- define "kprof.agent.consumerArgs" -}}
{{- $c := .Values.agent.consumers -}}
- --enable-debug-consumer={{ $c.debug.enabled }}
{{- if $c.perfdata.enabled }}
- --enable-profiling-perfdata
- --profiling-perfdata-path={{ $c.perfdata.path }}
- --profiling-perfdata-max-files={{ int64 $c.perfdata.maxFiles }}
- --profiling-perfdata-max-bytes={{ int64 $c.perfdata.maxBytes }}
{{- end }}
{{- if $c.pprof.enabled }}
- --enable-profiling-pprof
- --profiling-pprof-path={{ $c.pprof.path }}
{{- end }}
{{- with $c.datadog }}
{{- if .enabled }}
- --enable-profiling-datadog
{{- with .agentURL }}
- --datadog-agent-url={{ . }}
{{- end }}
{{- with .site }}
- --datadog-site={{ . }}
{{- end }}
{{- if .apiKeySecret.name }}
- --datadog-api-key-file=/etc/kprof/datadog/api-key
{{- end }}
{{- with .service }}
- --datadog-service={{ . }}
{{- end }}
{{- with .env }}
- --datadog-env={{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- with $c.otlp }}
{{- if .enabled }}
- --enable-profiling-otlp
- --otlp-endpoint={{ .endpoint }}
{{- if .insecure }}
- --otlp-insecure
{{- end }}
{{- range $k, $v := .headers }}
- {{ printf "--otlp-header=%s=%s" $k $v | quote }}
{{- end }}
{{- with .metricsEndpoint }}
- --otlp-metrics-endpoint={{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "kprof.agent.hostCgroup" . }}
- --cgroup-root=/host/sys/fs/cgroup
{{- end }}
{{- end }}

{{/*
"true" when the agent reads the host's cgroup tree: for node thresholds or the OTLP metrics.
*/}}
{{- define "kprof.agent.hostCgroup" -}}
{{- $a := .Values.agent -}}
{{- if or $a.nodeThresholds.enabled (and $a.consumers.otlp.enabled $a.consumers.otlp.metricsEndpoint) }}true{{ end }}
{{- end }}

{{/*
The agent's capabilities (see values.yaml, agent.*):
  BPF, PERFMON  load the sampler and open system-wide perf events (kernel >= 5.8)
  SYS_PTRACE    read /proc/PID/{root,maps,exe} of processes of other users: symbolization and attribution
  SYSLOG        kernel addresses in /proc/kallsyms under kptr_restrict=1 (agent.kernelSymbols)
  SYS_RESOURCE, IPC_LOCK  raise RLIMIT_MEMLOCK for BPF maps on kernels < 5.11 (agent.oldKernel)
SYS_ADMIN is never added: the /proc/PID/map_files fallback of the symbolizer (binaries deleted or
replaced since they were mapped) needs CHECKPOINT_RESTORE on kernels >= 5.9, which
agent.extraCapabilities can add; without it those few files are reported unsymbolized.
*/}}
{{- define "kprof.agent.capabilities" -}}
{{- $caps := list "BPF" "PERFMON" "SYS_PTRACE" }}
{{- if .Values.agent.kernelSymbols }}{{ $caps = append $caps "SYSLOG" }}{{ end }}
{{- if .Values.agent.oldKernel }}{{ $caps = concat $caps (list "SYS_RESOURCE" "IPC_LOCK") }}{{ end }}
{{- $caps = concat $caps .Values.agent.extraCapabilities | uniq }}
{{- toYaml $caps }}
{{- end }}
