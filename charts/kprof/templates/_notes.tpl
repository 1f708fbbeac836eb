{{/*
NOTES lines that copy pod volumes' files to the user's machine. The kprof image has no shell and
no tar, so `kubectl cp` cannot read its containers: a busybox ephemeral container mounts the volume
(kubectl debug --custom) and `kubectl cp` reads that one. Args: dict root, what, component
(operator or agent), copies (a list of dicts: volume, and next, a command that reads the copy),
user (the uid to run as, for a pod with runAsNonRoot; optional), lease (the leader election Lease
whose holder is the pod; optional).
*/}}
{{- define "kprof.notes.copyOut" -}}
{{- $ns := .root.Release.Namespace }}
{{- $sc := "" }}
{{- with .user }}{{ $sc = printf ",\"securityContext\":{\"runAsUser\":%d,\"runAsNonRoot\":true}" (int .) }}{{ end }}
{{- $profile := ternary "restricted" "general" (not (empty .user)) }}

{{ .what }} stay in the {{ .component }} pod.
The kprof image has no shell or tar, so `kubectl cp` cannot read its container: add a busybox ephemeral
container that mounts the volume, then copy from that one (kubectl >= 1.31 for --custom; an ephemeral
container stays in the pod, so pick a new --container name for the next copy):
  {{- if .lease }}
  POD=pod/$(kubectl -n {{ $ns }} get lease {{ .lease }} -o jsonpath='{.spec.holderIdentity}' | cut -d_ -f1)    # the leader writes them
  {{- else }}
  POD=$(kubectl -n {{ $ns }} get pods -l app.kubernetes.io/instance={{ .root.Release.Name }},app.kubernetes.io/component={{ .component }} -o name | head -n 1)
  {{- if eq .component "agent" }}    # or: --field-selector spec.nodeName=NODE{{ end }}
  {{- end }}
{{- range .copies }}
{{- $name := printf "copy-%s" .volume }}
  echo '{{ printf "{\"volumeMounts\":[{\"name\":\"%s\",\"mountPath\":\"/out\",\"readOnly\":true}]%s}" .volume $sc }}' > {{ $name }}.json
  kubectl -n {{ $ns }} debug "$POD" --image=busybox:1.37 --container={{ $name }} --profile={{ $profile }} --custom={{ $name }}.json -- sleep 3600
  kubectl -n {{ $ns }} cp -c {{ $name }} "${POD#pod/}:/out" ./{{ .volume }}
  {{ .next }}
{{- end }}
{{- end }}
