{{/* The chart's name, or nameOverride. */}}
{{- define "shiftwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart name>, or fullnameOverride; the Service is named this. */}}
{{- define "shiftwatch.fullname" -}}
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

{{- define "shiftwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shiftwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shiftwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shiftwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shiftwatch
{{- end }}

{{- define "shiftwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shiftwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "shiftwatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when state is kept on a changelog topic rather than in SQLite. */}}
{{- define "shiftwatch.changelog" -}}
{{- $state := .Values.config.state | default dict }}
{{- if $state.changelog_topic }}true{{ end }}
{{- end }}

{{/*
Refuse values that cannot run, each with its fix, before anything reaches the cluster.
*/}}
{{- define "shiftwatch.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "shiftwatch.changelog" .)) }}
{{- fail (printf "replicaCount %d needs config.state.changelog_topic (state per partition on a compacted topic, shared by the replicas) and secrets.state.name; one replica keeps state in SQLite on the volume" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (include "shiftwatch.changelog" .) (not .Values.secrets.state.name) }}
{{- fail "config.state.changelog_topic needs secrets.state.name: an existing Secret holding the checkpoint signing key shared by the replicas" }}
{{- end }}
{{- if and .Values.config.alerting .Values.config.alerting.webhook_url (not .Values.secrets.webhook.name) }}
{{- fail "config.alerting.webhook_url needs secrets.webhook.name: an existing Secret holding the webhook signing secret" }}
{{- end }}
{{- end }}

{{/* The projected Secret files: list of (secret name, key, file name, config path). */}}
{{- define "shiftwatch.secretFiles" -}}
{{- $s := .Values.secrets }}
{{- $files := list }}
{{- if $s.kafkaSaslPassword.name }}{{ $files = append $files (list $s.kafkaSaslPassword.name $s.kafkaSaslPassword.key "kafka-sasl-password" "kafka.sasl_password_file") }}{{ end }}
{{- if $s.kafkaOauthToken.name }}{{ $files = append $files (list $s.kafkaOauthToken.name $s.kafkaOauthToken.key "kafka-oauth-token" "kafka.sasl_oauth_token_file") }}{{ end }}
{{- if $s.kafkaTls.name }}
{{- if $s.kafkaTls.caKey }}{{ $files = append $files (list $s.kafkaTls.name $s.kafkaTls.caKey "kafka-ca.crt" "kafka.ssl_cafile") }}{{ end }}
{{- if $s.kafkaTls.certKey }}{{ $files = append $files (list $s.kafkaTls.name $s.kafkaTls.certKey "kafka-tls.crt" "kafka.ssl_certfile") }}{{ end }}
{{- if $s.kafkaTls.keyKey }}{{ $files = append $files (list $s.kafkaTls.name $s.kafkaTls.keyKey "kafka-tls.key" "kafka.ssl_keyfile") }}{{ end }}
{{- end }}
{{- if $s.webhook.name }}{{ $files = append $files (list $s.webhook.name $s.webhook.key "webhook-secret" "alerting.webhook_secret_file") }}{{ end }}
{{- if $s.state.name }}{{ $files = append $files (list $s.state.name $s.state.key "state-secret" "state.secret_file") }}{{ end }}
{{- toJson $files }}
{{- end }}

{{/*
The configuration file: the user's `config` plus what the chart owns (the policy's
path, the HTTP address, the state volume's files and the mounted secrets).
*/}}
{{- define "shiftwatch.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "policy" "/etc/shiftwatch/policy.yaml" }}
{{- $_ = set $cfg "http_host" "0.0.0.0" }}
{{- $_ = set $cfg "http_port" (int .Values.service.port) }}
{{- range $section := list "kafka" "alerting" "state" }}
{{- if not (hasKey $cfg $section) }}{{ $_ = set $cfg $section dict }}{{ end }}
{{- end }}
{{- $_ = set $cfg.alerting "outbox_path" "/var/lib/shiftwatch/outbox.sqlite3" }}
{{- if not (include "shiftwatch.changelog" .) }}
{{- $_ = set $cfg.state "path" "/var/lib/shiftwatch/state.sqlite3" }}
{{- end }}
{{- range $f := include "shiftwatch.secretFiles" . | fromJsonArray }}
{{- $where := splitList "." (index $f 3) }}
{{- $_ = set (get $cfg (index $where 0)) (index $where 1) (printf "/run/secrets/shiftwatch/%s" (index $f 2)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
