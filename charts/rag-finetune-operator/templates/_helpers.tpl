{{/* Names, labels and the RBAC rule data shared by the templates. */}}

{{- define "rfo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "rfo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rfo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rfo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rfo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rfo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: rag-finetune-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rfo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rfo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false: name an existing ServiceAccount" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rfo.peeringName" -}}
{{- default (include "rfo.fullname" .) .Values.peering.name -}}
{{- end -}}

{{- define "rfo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* RBAC rules (files/rbac-rules.yaml): the workload plus this mode's peering rules. */}}
{{- define "rfo.namespacedRules" -}}
{{- $rules := .Files.Get "files/rbac-rules.yaml" | fromYaml -}}
{{- $out := $rules.workload -}}
{{- if .Values.peering.enabled -}}
{{- if .Values.watchNamespaces -}}
{{- $out = concat $out $rules.peering.namespaced -}}
{{- else -}}
{{- $out = concat $out $rules.peering.clusterwide -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* RBAC rules for cluster-scoped objects (a ClusterRole in every mode). */}}
{{- define "rfo.clusterRules" -}}
{{- $rules := .Files.Get "files/rbac-rules.yaml" | fromYaml -}}
{{- $out := default (list) $rules.cluster -}}
{{- if .Values.watchNamespaces -}}
{{- $out = concat $out (default (list) $rules.namespacedModeCluster) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* topologySpreadConstraints, each without a labelSelector given this release's selector labels. */}}
{{- define "rfo.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "rfo.selectorLabels" . | fromYaml) -}}
{{- $out := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- if hasKey . "labelSelector" -}}
{{- $out = append $out . -}}
{{- else -}}
{{- $out = append $out (merge (dict "labelSelector" $selector) .) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
