{{- define "injector.name" -}}sidecarkit-injector{{- end -}}
{{- define "injector.labels" -}}
app.kubernetes.io/name: sidecarkit-injector
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "injector.selector" -}}
app.kubernetes.io/name: sidecarkit-injector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
