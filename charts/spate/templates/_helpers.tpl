{{/*
The chart's name, truncated to 63 characters (a label value).
*/}}
{{- define "spate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified name: <release>-spate, or the release name when it already contains the
chart's name. Truncated so that "<fullname>-operator" still fits 63 characters.
*/}}
{{- define "spate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The operator's Deployment, Service, ClusterRole/Role and Lease: <fullname>-operator.
*/}}
{{- define "spate.operatorName" -}}
{{- printf "%s-operator" (include "spate.fullname" .) }}
{{- end }}

{{- define "spate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object of the chart. Not `app.kubernetes.io/managed-by: spate-operator`: that
label marks the objects the operator itself makes for StreamJobs.
*/}}
{{- define "spate.labels" -}}
helm.sh/chart: {{ include "spate.chart" . }}
{{ include "spate.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: spate
{{- end }}

{{/*
Selects the operator's pods. `app.kubernetes.io/name: spate-operator`, not `spate`: the pods of
StreamJobs carry `app.kubernetes.io/name: spate`, and the two must never be confused.
*/}}
{{- define "spate.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-operator" (include "spate.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "spate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "spate.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "spate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The one namespace the operator watches, or nothing for all of them. The operator takes a
single --namespace; the schema allows at most one entry, and this refuses more in case the
schema was skipped.
*/}}
{{- define "spate.watchNamespace" -}}
{{- if gt (len .Values.watchNamespaces) 1 }}
{{- fail "watchNamespaces: the operator watches one namespace or all of them; give at most one" }}
{{- end }}
{{- if .Values.watchNamespaces }}
{{- first .Values.watchNamespaces }}
{{- end }}
{{- end }}

{{/*
The operator's permissions on the objects of StreamJobs, the same in a ClusterRole (every
namespace) and in a Role (one namespace). Kubernetes refuses to let anyone create a Role that
grants what they do not hold themselves (RBAC escalation prevention), so besides what the
controller does itself, the operator holds everything the Role it makes for each JobMaster
grants: pods get/list/watch/create/delete/patch, configmaps
get/list/watch/create/update/patch/delete, and apps deployments get.
*/}}
{{- define "spate.operatorRules" -}}
# StreamJobs: watched, finalizer added and removed, status written by server-side apply.
- apiGroups: ["spate.dev"]
  resources: ["streamjobs", "streamjobs/status", "streamjobs/finalizers"]
  verbs: ["get", "list", "watch", "patch", "update"]
# The objects each StreamJob owns: the JobMaster's ServiceAccount, the job's ConfigMap (and
# reading the ConfigMap a job's SQL comes from), the JobMaster's Service.
- apiGroups: [""]
  resources: ["serviceaccounts", "configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The JobMaster's Deployment, scaled to zero on suspend.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
# The JobMaster's Role and RoleBinding.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Pods: the JobMaster and worker pods it observes and removes; create and patch only because
# the JobMaster's Role grants them (escalation prevention, above).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "patch", "delete", "deletecollection"]
# Events about StreamJobs (phase changes, failed reconciliations).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
