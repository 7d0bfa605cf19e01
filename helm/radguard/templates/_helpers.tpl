{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "radguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name: the release name, with the chart's name unless the release already has it. */}}
{{- define "radguard.fullname" -}}
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

{{- define "radguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "radguard.labels" -}}
helm.sh/chart: {{ include "radguard.chart" . }}
{{ include "radguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: radguard
{{- end }}

{{- define "radguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "radguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* One component's name, labels and selector: call with (dict "root" $ "component" "gateway"). */}}
{{- define "radguard.componentName" -}}
{{- printf "%s-%s" (include "radguard.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "radguard.componentLabels" -}}
{{ include "radguard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "radguard.componentSelector" -}}
{{ include "radguard.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "radguard.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "radguard.componentName" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/* The radguard image reference. */}}
{{- define "radguard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* host:port of Triton's gRPC endpoint inside the cluster. */}}
{{- define "radguard.tritonGrpcUrl" -}}
{{- printf "%s:%d" (include "radguard.componentName" (dict "root" . "component" "triton")) (int .Values.triton.grpcPort) }}
{{- end }}

{{/* Kafka bootstrap servers, required. */}}
{{- define "radguard.kafkaBootstrap" -}}
{{- required "kafka.bootstrapServers must be set (host:port,... of the hospital's Kafka)" .Values.kafka.bootstrapServers }}
{{- end }}

{{/* Environment shared by every radguard process: call with (dict "root" $ "component" "gateway" "cfg" .Values.gateway). */}}
{{- define "radguard.commonEnv" -}}
{{- $root := .root -}}
- name: RADGUARD_METRICS_PORT
  value: {{ .cfg.metricsPort | quote }}
- name: RADGUARD_LOG_LEVEL
  value: {{ $root.Values.common.logLevel | quote }}
- name: RADGUARD_LOG_FORMAT
  value: {{ $root.Values.common.logFormat | quote }}
- name: RADGUARD_KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "radguard.kafkaBootstrap" $root | quote }}
{{- include "radguard.kafkaSecurityEnv" $root }}
{{- with $root.Values.otel.endpoint }}
- name: RADGUARD_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: RADGUARD_TRACE_SAMPLE_RATIO
  value: {{ $root.Values.otel.traceSampleRatio | quote }}
{{- end }}
{{- range $name, $value := $root.Values.common.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $value := .cfg.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* The pod's name names the instance in the events it produces (gateway, feedback, governance). */}}
{{- define "radguard.instanceEnv" -}}
- name: RADGUARD_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}

{{/* Kafka TLS and SASL settings; the password comes from its Secret, never from values. */}}
{{- define "radguard.kafkaSecurityEnv" -}}
{{- $k := .Values.kafka }}
{{- if or $k.tls.enabled $k.sasl.enabled }}
- name: RADGUARD_KAFKA_SECURITY_PROTOCOL
  value: {{ ternary (ternary "SASL_SSL" "SSL" $k.sasl.enabled) "SASL_PLAINTEXT" $k.tls.enabled | quote }}
{{- end }}
{{- if $k.tls.enabled }}
- name: RADGUARD_KAFKA_SSL_CAFILE
  value: /etc/radguard/kafka-tls/{{ $k.tls.caKey }}
{{- if $k.tls.certKey }}
- name: RADGUARD_KAFKA_SSL_CERTFILE
  value: /etc/radguard/kafka-tls/{{ $k.tls.certKey }}
- name: RADGUARD_KAFKA_SSL_KEYFILE
  value: /etc/radguard/kafka-tls/{{ $k.tls.keyKey }}
{{- end }}
{{- end }}
{{- if $k.sasl.enabled }}
- name: RADGUARD_KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: RADGUARD_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.secretName must be set when kafka.sasl.enabled" $k.sasl.secretName }}
      key: {{ $k.sasl.usernameKey }}
- name: RADGUARD_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.secretName }}
      key: {{ $k.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* TLS on the process's own gRPC server. */}}
{{- define "radguard.grpcTlsEnv" -}}
{{- if .Values.tls.enabled }}
- name: RADGUARD_TLS_CERT_FILE
  value: /etc/radguard/tls/tls.crt
- name: RADGUARD_TLS_KEY_FILE
  value: /etc/radguard/tls/tls.key
{{- if .Values.tls.requireClientCert }}
- name: RADGUARD_TLS_CA_FILE
  value: /etc/radguard/tls/ca.crt
- name: RADGUARD_TLS_REQUIRE_CLIENT_CERT
  value: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* A DSN from the PostgreSQL Secret: call with (dict "root" $ "component" "ledger"). */}}
{{- define "radguard.postgresEnv" -}}
- name: RADGUARD_POSTGRES_DSN
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.postgres.secretName }}
      key: {{ index .root.Values.postgres.keys .component }}
{{- end }}

{{/* Volumes every radguard pod has: a writable /tmp, TLS material when enabled, the model repository. */}}
{{- define "radguard.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if .Values.tls.enabled }}
- name: grpc-tls
  secret:
    secretName: {{ required "tls.secretName must be set when tls.enabled" .Values.tls.secretName }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ required "kafka.tls.secretName must be set when kafka.tls.enabled" .Values.kafka.tls.secretName }}
{{- end }}
{{- end }}

{{- define "radguard.commonMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.enabled }}
- name: grpc-tls
  mountPath: /etc/radguard/tls
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: /etc/radguard/kafka-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* The model repository volume (a PVC, or an emptyDir the init container fills). */}}
{{- define "radguard.modelRepoVolume" -}}
- name: model-repo
{{- if eq .Values.modelRepository.source "pvc" }}
  persistentVolumeClaim:
    claimName: {{ required "modelRepository.pvc.claimName must be set when modelRepository.source is pvc" .Values.modelRepository.pvc.claimName }}
    readOnly: true
{{- else }}
  emptyDir:
    sizeLimit: 2Gi
{{- end }}
{{- end }}

{{/* The init container copying the model repository into its emptyDir (source initContainer only). */}}
{{- define "radguard.modelRepoInit" -}}
{{- if eq .Values.modelRepository.source "initContainer" }}
initContainers:
  - name: model-repo
    image: {{ default (include "radguard.image" .) .Values.modelRepository.initContainer.image }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command: ["sh", "-c", "cp -R {{ .Values.modelRepository.initContainer.path }}/. /models-out/"]
    securityContext:
      {{- toYaml .Values.containerSecurityContext | nindent 6 }}
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {cpu: 500m, memory: 256Mi}
    volumeMounts:
      - name: model-repo
        mountPath: /models-out
{{- end }}
{{- end }}

{{/* gRPC probes: native gRPC health checks; with TLS on, kubelet cannot speak TLS, so a TCP check. */}}
{{- define "radguard.grpcProbes" -}}
{{- $port := int .cfg.grpcPort }}
{{- if .root.Values.tls.enabled }}
readinessProbe:
  tcpSocket:
    port: grpc
  periodSeconds: 10
livenessProbe:
  tcpSocket:
    port: grpc
  initialDelaySeconds: 20
  periodSeconds: 20
{{- else }}
startupProbe:
  grpc:
    port: {{ $port }}
  periodSeconds: 5
  failureThreshold: 60
readinessProbe:
  grpc:
    port: {{ $port }}
  periodSeconds: 10
  timeoutSeconds: 3
livenessProbe:
  grpc:
    port: {{ $port }}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every component's pod template. */}}
{{- define "radguard.podCommon" -}}
serviceAccountName: {{ include "radguard.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
