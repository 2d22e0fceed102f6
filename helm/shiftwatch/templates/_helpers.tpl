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

{{/* A stage's workload and Service with scale.enabled: <fullname>-<stage>; takes (list . stage). */}}
{{- define "shiftwatch.stageName" -}}
{{- printf "%s-%s" (include "shiftwatch.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
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

{{/*
Refuse values that cannot run, each with its fix, before anything reaches the cluster.
*/}}
{{- define "shiftwatch.validate" -}}
{{- if and .Values.config.state .Values.config.state.changelog_topic }}
{{- fail "config.state.changelog_topic: removed in 0.4.0 — the changelog scale-out mode is replaced by the two-stage tier on Quix Streams: set scale.enabled=true (an ingest and a judge workload, scale.ingest.replicas and scale.judge.replicas; docs/scale.md)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.scale.enabled) }}
{{- fail (printf "replicaCount %d: the embedded engine is one replica per consumer group (its state is SQLite on one volume); for several replicas set scale.enabled=true (the two-stage tier: scale.ingest.replicas and scale.judge.replicas)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.scale.enabled (not .Values.secrets.state.name) }}
{{- fail "scale.enabled needs secrets.state.name: an existing Secret holding the state signing key (state.secret_file), the same for every ingest and judge replica" }}
{{- end }}
{{- if and .Values.scale.enabled .Values.config.history .Values.config.history.path }}
{{- fail "config.history.path: the two-stage tier (scale.enabled) records no history yet (its judge stage has no recorder): unset it" }}
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
{{- if .Values.scale.enabled }}
{{- /* Each stage's state: RocksDB on the pod's volume, restored from Quix's changelog topics. */}}
{{- $scale := get $cfg "scale" | default dict }}
{{- $_ = set $scale "state_dir" "/var/lib/shiftwatch/quix" }}
{{- $_ = set $scale "partials_topic" .Values.scale.partialsTopic }}
{{- $_ = set $scale "partials_partitions" (int .Values.scale.partialsPartitions) }}
{{- $_ = set $scale "commit_seconds" .Values.scale.commitSeconds }}
{{- $_ = set $scale "emit_seconds" .Values.scale.emitSeconds }}
{{- $_ = set $cfg "scale" $scale }}
{{- else }}
{{- $_ = set $cfg.state "path" "/var/lib/shiftwatch/state.sqlite3" }}
{{- end }}
{{- range $f := include "shiftwatch.secretFiles" . | fromJsonArray }}
{{- $where := splitList "." (index $f 3) }}
{{- $_ = set (get $cfg (index $where 0)) (index $where 1) (printf "/run/secrets/shiftwatch/%s" (index $f 2)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The pod template of a workload. Takes a dict: root (the chart's context), component
("" for the single workload, else ingest or judge), args (the container's), resources,
and state (the state volume's source; none when a volumeClaimTemplate provides it).
*/}}
{{- define "shiftwatch.podTemplate" -}}
{{- $root := .root }}
{{- $files := include "shiftwatch.secretFiles" $root | fromJsonArray -}}
metadata:
  labels:
    {{- include "shiftwatch.selectorLabels" $root | nindent 4 }}
    {{- with .component }}
    app.kubernetes.io/component: {{ . }}
    {{- end }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A changed configuration or policy rolls the pods.
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "shiftwatch.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: shiftwatch
      image: {{ include "shiftwatch.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: {{ toJson .args }}
      ports:
        - name: http
          containerPort: {{ $root.Values.service.port }}
          protocol: TCP
      {{- if $root.Values.secrets.kafkaSslKeyPassword.name }}
      env:
        - name: SHIFTWATCH_KAFKA__SSL_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ $root.Values.secrets.kafkaSslKeyPassword.name }}
              key: {{ $root.Values.secrets.kafkaSslKeyPassword.key }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /livez
          port: http
        {{- toYaml $root.Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $root.Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/shiftwatch
          readOnly: true
        - name: state
          mountPath: /var/lib/shiftwatch
        - name: tmp
          mountPath: /tmp
        {{- if $files }}
        - name: secrets
          mountPath: /run/secrets/shiftwatch
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "shiftwatch.fullname" $root }}
    {{- with .state }}
    - name: state
      {{- toYaml . | nindent 6 }}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $files }}
    - name: secrets
      projected:
        defaultMode: 0440
        sources:
          {{- range $f := $files }}
          - secret:
              name: {{ index $f 0 }}
              items:
                - key: {{ index $f 1 }}
                  path: {{ index $f 2 }}
          {{- end }}
    {{- end }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
