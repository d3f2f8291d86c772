{{/* Names and labels shared by every template. */}}
{{- define "kubehub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubehub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kubehub.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kubehub.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects are shared by every installation: their names carry the namespace. */}}
{{- define "kubehub.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "kubehub.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubehub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubehub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubehub.labels" -}}
{{ include "kubehub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kubehub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubehub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when some state lives in the pod's data volume (SQLite or the embedded log store). */}}
{{- define "kubehub.localState" -}}
{{- if or (not .Values.database.existingSecret) (eq .Values.logs.backend "embedded") -}}true{{- end -}}
{{- end -}}

{{- define "kubehub.persistent" -}}
{{- if eq (toString .Values.persistence.enabled) "auto" -}}
{{- include "kubehub.localState" . -}}
{{- else if eq (toString .Values.persistence.enabled) "true" -}}true{{- end -}}
{{- end -}}

{{- define "kubehub.secretKeyName" -}}
{{- default (printf "%s-secret-key" (include "kubehub.fullname" .)) .Values.secretKey.existingSecret -}}
{{- end -}}

{{/* The node log collector (templates/collector.yaml): its namespace, name and labels. */}}
{{- define "kubehub.collectorNamespace" -}}
{{- default .Release.Namespace .Values.collector.namespace -}}
{{- end -}}

{{- define "kubehub.collectorName" -}}
{{- printf "%s-collector" (include "kubehub.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubehub.collectorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kubehub.name" . }}-collector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubehub.collectorLabels" -}}
{{ include "kubehub.collectorSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Refuse settings that would run several writers on local state. */}}
{{- define "kubehub.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (include "kubehub.localState" .) -}}
{{- fail "replicaCount > 1 needs database.existingSecret (PostgreSQL) and logs.backend=elasticsearch: SQLite and the embedded log store live in one pod's volume" -}}
{{- end -}}
{{- if and (eq .Values.logs.backend "elasticsearch") (not .Values.elasticsearch.url) -}}
{{- fail "logs.backend=elasticsearch needs elasticsearch.url" -}}
{{- end -}}
{{- if not (has .Values.logs.backend (list "embedded" "elasticsearch")) -}}
{{- fail "logs.backend must be embedded or elasticsearch" -}}
{{- end -}}
{{- if and .Values.collector.enabled (not .Values.collector.tokenSha256) -}}
{{- fail "collector.enabled needs collector.tokenSha256 (the digest `kubehub collector-token` prints): without it the hub's ingest is closed" -}}
{{- end -}}
{{- if and .Values.collector.tokenSha256 (not (regexMatch "^[0-9a-fA-F]{64}(,[0-9a-fA-F]{64})*$" .Values.collector.tokenSha256)) -}}
{{- fail "collector.tokenSha256 must be a comma list of SHA-256 digests (64 hex digits each)" -}}
{{- end -}}
{{- if not (has .Values.smtp.security (list "none" "starttls" "tls")) -}}
{{- fail "smtp.security must be none, starttls or tls" -}}
{{- end -}}
{{- end -}}
