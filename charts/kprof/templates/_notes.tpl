{{/*
NOTES lines that copy a pod volume's files to the user's machine. The kprof image has no shell and
no tar, so `kubectl cp` cannot read its containers: a busybox ephemeral container mounts the volume
(kubectl debug --custom) and `kubectl cp` reads that one. Args: dict root, what, component
(operator or agent), volume, user (the uid to run as, for a pod with runAsNonRoot; optional), lease (the leader
election Lease whose holder is the pod; optional), next
(a command that reads the copy).
*/}}
{{- define "kprof.notes.copyOut" -}}
{{- $ns := .root.Release.Namespace }}
{{- $name := printf "copy-%s" .volume }}
{{- $mount := printf "\"volumeMounts\":[{\"name\":\"%s\",\"mountPath\":\"/out\",\"readOnly\":true}]" .volume }}
{{- $sc := "" }}
{{- with .user }}{{ $sc = printf ",\"securityContext\":{\"runAsUser\":%d,\"runAsNonRoot\":true}" (int .) }}{{ end }}

{{ .what }} are in the {{ .volume }} volume of the {{ .component }} pod. The kprof image has no shell or tar, so
`kubectl cp` cannot read its container: add a busybox ephemeral container that mounts the volume, then copy
from that one (kubectl >= 1.31 for --custom; an ephemeral container stays in the pod, so pick a new
--container name for the next copy):
  {{- if .lease }}
  POD=pod/$(kubectl -n {{ $ns }} get lease {{ .lease }} -o jsonpath='{.spec.holderIdentity}' | cut -d_ -f1)    # the leader writes them
  {{- else }}
  POD=$(kubectl -n {{ $ns }} get pods -l app.kubernetes.io/instance={{ .root.Release.Name }},app.kubernetes.io/component={{ .component }} -o name | head -n 1)
  {{- if eq .component "agent" }}    # or: --field-selector spec.nodeName=NODE{{ end }}
  {{- end }}
  echo '{{ printf "{%s%s}" $mount $sc }}' > {{ $name }}.json
  kubectl -n {{ $ns }} debug "$POD" --image=busybox:1.37 --container={{ $name }} --profile={{ if .user }}restricted{{ else }}general{{ end }} --custom={{ $name }}.json -- sleep 3600
  kubectl -n {{ $ns }} cp -c {{ $name }} "${POD#pod/}:/out" ./{{ .volume }}
  {{ .next }}
{{- end }}
