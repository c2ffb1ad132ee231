{{/* Chart name. */}}
{{- define "serein.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "serein.fullname" -}}
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

{{- define "serein.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels shared by every pod of the release (API and migration Job). */}}
{{- define "serein.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serein.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "serein.labels" -}}
helm.sh/chart: {{ include "serein.chart" . }}
{{ include "serein.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: serein
{{- end }}

{{/* The API pods. */}}
{{- define "serein.apiSelectorLabels" -}}
{{ include "serein.selectorLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{- define "serein.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "serein.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "serein.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* Secret holding the API pods' DATABASE_URL. */}}
{{- define "serein.databaseSecretName" -}}
{{- default (include "serein.fullname" .) .Values.database.existingSecret }}
{{- end }}

{{- define "serein.databaseUrlKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.urlKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/* Whether the chart creates the "<fullname>" Secret (dev values only). */}}
{{- define "serein.createAppSecret" -}}
{{- if or (and (not .Values.database.existingSecret) .Values.database.url) .Values.secrets.values }}true{{ end }}
{{- end }}

{{/* Secret holding the migrator (owner) URL. */}}
{{- define "serein.migratorSecretName" -}}
{{- default (printf "%s-migrator" (include "serein.fullname" .)) .Values.migrations.database.existingSecret }}
{{- end }}

{{- define "serein.migratorUrlKey" -}}
{{- if .Values.migrations.database.existingSecret }}{{ .Values.migrations.database.urlKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/*
Refuse to render a release that cannot work. Included by the Deployment, so `helm template`
and `helm install` fail early with a message naming the value.
*/}}
{{- define "serein.validate" -}}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) }}
{{- fail "database.existingSecret is required (a Secret holding the runtime DATABASE_URL); database.url is for development only" }}
{{- end }}
{{- if and .Values.migrations.enabled (not .Values.migrations.database.existingSecret) (not .Values.migrations.database.url) }}
{{- fail "migrations.database.existingSecret is required (a Secret holding the owner/migrator URL), or set migrations.enabled=false" }}
{{- end }}
{{- if not (has .Values.tenants.applyWith (list "job" "serve")) }}
{{- fail "tenants.applyWith must be job or serve" }}
{{- end }}
{{- if and .Values.tenants.enabled (eq .Values.tenants.applyWith "job") (not .Values.migrations.enabled) }}
{{- fail "tenants.applyWith=job needs migrations.enabled=true (the migration Job applies the files)" }}
{{- end }}
{{- if and .Values.tenants.enabled (not .Values.tenants.files) }}
{{- fail "tenants.enabled with no tenants.files: applying an empty directory would suspend every file-managed tenant; add files or disable" }}
{{- end }}
{{- range $slug, $_ := .Values.tenants.files }}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" $slug) }}
{{- fail (printf "tenants.files: %q is not a valid tenant slug (a DNS label: a-z, 0-9, -)" $slug) }}
{{- end }}
{{- end }}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$" .Values.config.baseDomain) }}
{{- fail "config.baseDomain must be a lower-case DNS name (e.g. serein.example.com)" }}
{{- end }}
{{- $grace := add (int .Values.preStopSleepSeconds) (div (add (int64 .Values.config.shutdownGraceMs) 999) 1000) }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $grace) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + shutdownGraceMs/1000 (%d)" (int .Values.terminationGracePeriodSeconds) (int $grace)) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}

{{/*
Environment shared by the API pods and the migration Job (everything but DATABASE_URL and the
tenants directory, which differ).
*/}}
{{- define "serein.commonEnv" -}}
- name: SEREIN_CREATE_DATABASE
  # The database exists (created by the operator); never CREATE DATABASE from a pod.
  value: "false"
- name: SEREIN_APP_ROLE
  value: {{ .Values.config.appRole | quote }}
- name: BASE_DOMAIN
  value: {{ .Values.config.baseDomain | quote }}
- name: LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.config.rustLog | quote }}
- name: DB_ACQUIRE_TIMEOUT_MS
  value: {{ .Values.config.dbAcquireTimeoutMs | int64 | quote }}
{{- end }}

{{/*
The offboarding purge runs as a CronJob with the owner's URL (a Secret that outlives the hook)
when the production layout is used; the API pods then run no purge job (their login cannot act
as the owner, and the server refuses to start one it cannot run).
*/}}
{{- define "serein.purgeCronJob" -}}
{{- if and .Values.purge.cronJob.enabled .Values.migrations.enabled .Values.migrations.database.existingSecret -}}
true
{{- end -}}
{{- end }}

{{/* env/envFrom of the migration Job's containers: the OWNER's URL, never the runtime one. */}}
{{- define "serein.jobEnv" -}}
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "serein.migratorSecretName" . }}
        key: {{ include "serein.migratorUrlKey" . }}
  {{- include "serein.commonEnv" . | nindent 2 }}
  - name: DB_MAX_CONNECTIONS
    value: "2"
{{- with .Values.migrations.extraSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}
