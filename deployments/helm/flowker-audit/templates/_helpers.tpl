{{/* Names. */}}
{{- define "flowker-audit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flowker-audit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "flowker-audit.component" -}}
{{- if eq .Values.mode "gateway" -}}gateway{{- else -}}sidecar{{- end -}}
{{- end -}}

{{- define "flowker-audit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flowker-audit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "flowker-audit.component" . }}
{{- end -}}

{{- define "flowker-audit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "flowker-audit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "flowker-audit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flowker-audit.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flowker-audit.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The workload kind: gateway is always a StatefulSet. */}}
{{- define "flowker-audit.workloadKind" -}}
{{- if eq .Values.mode "gateway" -}}StatefulSet{{- else -}}{{ .Values.sidecar.workload }}{{- end -}}
{{- end -}}

{{/* Whether more than one replica can run (PDB). */}}
{{- define "flowker-audit.multiReplica" -}}
{{- if or (gt (int .Values.replicaCount) 1) (and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) 1)) -}}true{{- end -}}
{{- end -}}

{{/* Checks that fail the render with what to do. */}}
{{- define "flowker-audit.validate" -}}
{{- if not (has .Values.mode (list "sidecar" "gateway")) -}}
{{- fail (printf "mode must be sidecar or gateway, not %q" .Values.mode) -}}
{{- end -}}
{{- if not (has .Values.sidecar.workload (list "StatefulSet" "Deployment")) -}}
{{- fail (printf "sidecar.workload must be StatefulSet or Deployment, not %q" .Values.sidecar.workload) -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- fail "secrets.existingSecret is required: create a Secret with the keys listed under secrets.keys (see NOTES and README) and name it here" -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (not .Values.sidecar.flowker.existingSecret) (gt (len .Values.sidecar.flowker.secretEnv) 0) -}}
{{- fail "sidecar.flowker.existingSecret is required for Flowker's secret settings (sidecar.flowker.secretEnv)" -}}
{{- end -}}
{{- if and .Values.clickhouse.enabled (not .Values.clickhouse.passwordSecret.name) -}}
{{- fail "clickhouse.passwordSecret.name is required with clickhouse.enabled" -}}
{{- end -}}
{{- if and .Values.clickhouse.query (not .Values.clickhouse.enabled) -}}
{{- fail "clickhouse.query needs clickhouse.enabled" -}}
{{- end -}}
{{- if and (eq (include "flowker-audit.workloadKind" .) "Deployment") (not .Values.clickhouse.query) -}}
{{- fail "sidecar.workload Deployment keeps no volume across pods: it needs a shared query sink (clickhouse.enabled and clickhouse.query)" -}}
{{- end -}}
{{- if and (not .Values.sqlite.enabled) (not .Values.clickhouse.query) -}}
{{- fail "no query sink: enable sqlite or set clickhouse.query" -}}
{{- end -}}
{{- if and .Values.watcher.oauth2.enabled (or (not .Values.watcher.oauth2.tokenURL) (not .Values.watcher.oauth2.clientID) (not .Values.watcher.oauth2.clientSecret.name)) -}}
{{- fail "watcher.oauth2 needs tokenURL, clientID and clientSecret.name" -}}
{{- end -}}
{{- if and .Values.watcher.oauth2.enabled .Values.watcher.serviceAccountToken.enabled -}}
{{- fail "watcher.oauth2 and watcher.serviceAccountToken are alternatives: enable one" -}}
{{- end -}}
{{- end -}}

{{/* Where the upstream is. */}}
{{- define "flowker-audit.upstreamURL" -}}
{{- if eq .Values.mode "gateway" -}}
{{- printf "http://%s.%s.svc:%d" .Values.gateway.flowker.serviceName (default .Release.Namespace .Values.gateway.flowker.namespace) (int .Values.gateway.flowker.port) -}}
{{- else -}}
{{- printf "http://127.0.0.1:%d" (int .Values.sidecar.flowker.port) -}}
{{- end -}}
{{- end -}}

{{/* flowker-audit's config.yaml: the values' config plus what the chart decides. */}}
{{- define "flowker-audit.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c "upstream" (merge (dict "url" (include "flowker-audit.upstreamURL" .)) (default dict $c.upstream)) -}}
{{- $_ = set $c "listen" (merge (dict "addr" (printf ":%d" (int .Values.proxyPort))) (default dict $c.listen)) -}}
{{- $_ = set $c "admin" (merge (dict "addr" (printf ":%d" (int .Values.adminPort))) (default dict $c.admin)) -}}
{{- $_ = set $c "data_dir" "/var/lib/flowker-audit" -}}
{{- $_ = set $c "shutdown_timeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds)) -}}
{{- $w := deepCopy (default dict $c.watcher) -}}
{{- if .Values.watcher.oauth2.enabled -}}
{{- $_ = set $w "oauth2" (dict "token_url" .Values.watcher.oauth2.tokenURL "client_id" .Values.watcher.oauth2.clientID "client_secret_file" "/etc/flowker-audit/oauth2/client-secret" "scopes" .Values.watcher.oauth2.scopes) -}}
{{- end -}}
{{- if .Values.watcher.serviceAccountToken.enabled -}}
{{- $_ = set $w "token_file" "/var/run/secrets/flowker-audit/token" -}}
{{- end -}}
{{- $_ = set $c "watcher" $w -}}
{{- $sinks := list -}}
{{- if and .Values.sqlite.enabled (not .Values.clickhouse.query) -}}
{{- $sinks = append $sinks (dict "name" "store" "plugin" "sqlite" "query" true "config" (dict "path" "/var/lib/flowker-audit/audit.db")) -}}
{{- end -}}
{{- if .Values.clickhouse.enabled -}}
{{- $ch := merge (dict "addr" .Values.clickhouse.addr "database" .Values.clickhouse.database "user" .Values.clickhouse.user "password_env" "CLICKHOUSE_PASSWORD" "create_schema" .Values.clickhouse.createSchema) (deepCopy .Values.clickhouse.extraConfig) -}}
{{- $sinks = append $sinks (dict "name" "warehouse" "plugin" "clickhouse" "query" .Values.clickhouse.query "config" $ch) -}}
{{- end -}}
{{- $_ = set $c "sinks" $sinks -}}
{{- toYaml $c -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the preStop pause, the shutdown deadline and a margin. */}}
{{- define "flowker-audit.terminationGrace" -}}
{{- $audit := add (int .Values.preStopSleepSeconds) (int .Values.shutdownTimeoutSeconds) 5 -}}
{{- if eq .Values.mode "sidecar" -}}
{{- max $audit (add (int .Values.sidecar.flowker.preStopSleepSeconds) 10) -}}
{{- else -}}
{{- $audit -}}
{{- end -}}
{{- end -}}
