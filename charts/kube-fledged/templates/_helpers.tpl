{{/* The name of the chart's objects: the release's name when it holds "kube-fledged", else "<release>-kube-fledged". */}}
{{- define "kube-fledged.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The label every object carries, and the controller's pods are selected by. */}}
{{- define "kube-fledged.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
{{- end -}}

{{/* Every object's labels: the selector label, and Helm's. */}}
{{- define "kube-fledged.labels" -}}
{{ include "kube-fledged.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The controller's image: repository, tag (default: appVersion), and the
digest when one is set, which wins over the tag. */}}
{{- define "kube-fledged.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- if .Values.image.digest -}}
{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The helper's or CRI image: the controller's repository with a suffix, at
the controller's tag, and its own digest when one is set. */}}
{{- define "kube-fledged.siblingImage" -}}
{{- $root := index . 0 -}}
{{- $ref := printf "%s%s:%s" $root.Values.image.repository (index . 1) (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- with index . 2 -}}
{{- $ref = printf "%s@%s" $ref . -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "kube-fledged.serviceAccountName" -}}
{{ include "kube-fledged.fullname" . }}
{{- end -}}

{{- define "kube-fledged.deleteServiceAccountName" -}}
{{ include "kube-fledged.fullname" . }}-image-delete
{{- end -}}

{{/* Whether the PodDisruptionBudget is made: as set, else with 2 or more replicas. */}}
{{- define "kube-fledged.pdbEnabled" -}}
{{- if kindIs "bool" .Values.podDisruptionBudget.enabled -}}
{{- .Values.podDisruptionBudget.enabled -}}
{{- else -}}
{{- ge (int .Values.replicaCount) 2 -}}
{{- end -}}
{{- end -}}

{{/* The namespace of the controller and its objects: namespace.name, else the release's. */}}
{{- define "kube-fledged.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name -}}
{{- end -}}
