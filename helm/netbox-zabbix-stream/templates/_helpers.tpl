{{- define "nbzx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nbzx.fullname" -}}
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

{{- define "nbzx.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "nbzx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nbzx.selector" -}}
app.kubernetes.io/name: {{ include "nbzx.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "nbzx.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "nbzx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nbzx.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Consumer replicas the Zabbix budget is divided by: the most that can run at once. */}}
{{- define "nbzx.consumerMax" -}}
{{- if .Values.consumer.hpa.enabled -}}{{ .Values.consumer.hpa.maxReplicas | int }}{{- else -}}{{ .Values.consumer.replicas | int }}{{- end -}}
{{- end -}}

{{/* The nbzx config file: the user's config: block plus what the chart owns. */}}
{{- define "nbzx.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $n := include "nbzx.consumerMax" . | int -}}
{{- $kafka := dict "bootstrap" .Values.kafka.bootstrap "partitions" (.Values.kafka.partitions | int) "replication" (.Values.kafka.replication | int) "security_protocol" .Values.kafka.securityProtocol -}}
{{- if .Values.kafka.saslMechanism -}}{{- $_ := set $kafka "sasl_mechanism" .Values.kafka.saslMechanism -}}{{- end -}}
{{- if .Values.kafka.tls.secretName -}}
{{- $_ := set $kafka "ssl_cafile" "/etc/nbzx/kafka-tls/ca.crt" -}}
{{- if .Values.kafka.tls.clientCert -}}
{{- $_ := set $kafka "ssl_certfile" "/etc/nbzx/kafka-tls/tls.crt" -}}
{{- $_ := set $kafka "ssl_keyfile" "/etc/nbzx/kafka-tls/tls.key" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "kafka" (merge $kafka (default (dict) $cfg.kafka)) -}}
{{- $zbx := dict "rate_per_s" (divf .Values.zabbix.ratePerSecond $n) "concurrency" (max 1 (div (.Values.zabbix.concurrency | int) $n)) -}}
{{- $_ := set $cfg "zabbix" (merge $zbx (default (dict) $cfg.zabbix)) -}}
{{- if .Values.zabbix.servers -}}
{{- $servers := default (dict) $cfg.zabbix.servers -}}
{{- range $name, $v := .Values.zabbix.servers -}}
{{- $budget := dict "rate_per_s" (divf (default $.Values.zabbix.ratePerSecond $v.ratePerSecond) $n) "concurrency" (max 1 (div ((default $.Values.zabbix.concurrency $v.concurrency) | int) $n)) -}}
{{- $_ := set $servers $name (merge $budget (default (dict) (index $servers $name))) -}}
{{- end -}}
{{- $_ := set $cfg.zabbix "servers" $servers -}}
{{- end -}}
{{- if or .Values.privateCA.secretName .Values.privateCA.configMapName -}}
{{- $ca := dict "ca_file" (printf "/etc/nbzx/ca/%s" .Values.privateCA.key) -}}
{{- $_ := set $cfg "netbox" (merge (default (dict) $cfg.netbox) $ca) -}}
{{- $_ := set $cfg "zabbix" (merge $cfg.zabbix $ca) -}}
{{- range $name, $s := (default (dict) $cfg.zabbix.servers) -}}
{{- $_ := set $cfg.zabbix.servers $name (merge $s $ca) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "receiver" (merge (dict "host" "0.0.0.0" "port" 8090) (default (dict) $cfg.receiver)) -}}
{{- $_ := set $cfg "consumer" (merge (dict "http_host" "0.0.0.0" "http_port" 8091) (default (dict) $cfg.consumer)) -}}
{{- $_ := set $cfg "console" (merge (dict "host" "0.0.0.0" "port" 8092) (default (dict) $cfg.console)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Environment variables from existing Secrets; only the ones whose Secret name is set. Call with
(dict "root" $ "component" "receiver|consumer|console|hook"): a component's own Kafka user
(secrets.kafkaUsers.<component>, with its own ACLs) replaces the shared kafkaSaslUsername/Password. */}}
{{- define "nbzx.secretEnv" -}}
{{- $ := .root -}}
{{- $vars := dict "netboxToken" "NETBOX_TOKEN" "zabbixToken" "ZABBIX_TOKEN" "zabbixUser" "ZABBIX_USER" "zabbixPassword" "ZABBIX_PASSWORD" "webhookSecret" "NBZX_WEBHOOK_SECRET" "apiToken" "NBZX_API_TOKEN" "kafkaSaslUsername" "NBZX_KAFKA_SASL_USERNAME" "kafkaSaslPassword" "NBZX_KAFKA_SASL_PASSWORD" -}}
{{- $own := index (default (dict) $.Values.secrets.kafkaUsers) .component | default (dict) -}}
{{- range $key := keys $vars | sortAlpha }}
{{- $ref := index $.Values.secrets $key }}
{{- if and $own.name (eq $key "kafkaSaslUsername") }}{{- $ref = dict "name" $own.name "key" (default "username" $own.usernameKey) }}{{- end }}
{{- if and $own.name (eq $key "kafkaSaslPassword") }}{{- $ref = dict "name" $own.name "key" (default "password" $own.passwordKey) }}{{- end }}
{{- if $ref.name }}
- name: {{ index $vars $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- range $name, $v := $.Values.zabbix.servers }}
{{- $stem := printf "ZABBIX_%s" (upper (regexReplaceAll "[^a-zA-Z0-9]" $name "_")) }}
{{- range $part := list "token" "user" "password" }}
{{- $ref := index $v (printf "%sSecret" $part) }}
{{- if and $ref $ref.name }}
- name: {{ printf "%s_%s" $stem (upper $part) }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- end }}
{{- range $.Values.secrets.extra }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
- name: NBZX_CONFIG
  value: /etc/nbzx/config/config.yaml
{{- end -}}

{{/* Checks that fail the render with a readable message. */}}
{{- define "nbzx.validate" -}}
{{- $max := include "nbzx.consumerMax" . | int -}}
{{- if gt $max (.Values.kafka.partitions | int) -}}
{{- fail (printf "consumer replicas (%d) exceed kafka.partitions (%d): the extra consumers would sit idle. Lower consumer.replicas / consumer.hpa.maxReplicas or add partitions." $max (.Values.kafka.partitions | int)) -}}
{{- end -}}
{{- if and .Values.console.enabled (not (or .Values.secrets.consoleViewerTokens.name .Values.secrets.consoleOperatorTokens.name)) -}}
{{- fail "console.enabled needs secrets.consoleViewerTokens.name and/or secrets.consoleOperatorTokens.name: the Secret(s) holding the console sign-in tokens" -}}
{{- end -}}
{{- $_ := required "secrets.netboxToken.name is required: the name of an existing Secret holding the NetBox API token" .Values.secrets.netboxToken.name -}}
{{- $_ := required "secrets.webhookSecret.name is required: the name of an existing Secret holding the webhook secret" .Values.secrets.webhookSecret.name -}}
{{- $_ := required "secrets.apiToken.name is required: the name of an existing Secret holding the /reconcile bearer token" .Values.secrets.apiToken.name -}}
{{- if .Values.zabbix.servers -}}
{{- $configured := default (dict) (default (dict) .Values.config.zabbix).servers -}}
{{- range $name, $v := .Values.zabbix.servers -}}
{{- if not (hasKey $configured $name) -}}
{{- fail (printf "zabbix.servers.%s: config.zabbix.servers has no server %s (its url goes there, with config.routes)" $name $name) -}}
{{- end -}}
{{- if not (or (and $v.tokenSecret $v.tokenSecret.name) (and $v.userSecret $v.userSecret.name $v.passwordSecret $v.passwordSecret.name)) -}}
{{- fail (printf "zabbix.servers.%s: tokenSecret.name (or userSecret.name and passwordSecret.name) is required" $name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := $configured -}}
{{- if not (hasKey $.Values.zabbix.servers $name) -}}
{{- fail (printf "config.zabbix.servers.%s: zabbix.servers.%s must name the Secret(s) holding its credentials" $name $name) -}}
{{- end -}}
{{- end -}}
{{- else if not (or .Values.secrets.zabbixToken.name (and .Values.secrets.zabbixUser.name .Values.secrets.zabbixPassword.name)) -}}
{{- fail "secrets.zabbixToken.name (or secrets.zabbixUser.name and secrets.zabbixPassword.name) is required" -}}
{{- end -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol -}}
{{- range $c := list "receiver" "consumer" "console" "hook" -}}
{{- $own := index (default (dict) $.Values.secrets.kafkaUsers) $c | default (dict) -}}
{{- if not (or $own.name $.Values.secrets.kafkaSaslPassword.name) -}}
{{- fail (printf "kafka.securityProtocol is SASL_*: secrets.kafkaSaslUsername.name and secrets.kafkaSaslPassword.name are required (or secrets.kafkaUsers.%s for the %s)" $c $c) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod volumes; call with (dict "root" $ "configMap" NAME). */}}
{{- define "nbzx.volumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir: {}
{{- if .root.Values.kafka.tls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ .root.Values.kafka.tls.secretName }}
{{- end }}
{{- with .root.Values.privateCA }}
{{- if .secretName }}
- name: private-ca
  secret:
    secretName: {{ .secretName }}
{{- else if .configMapName }}
- name: private-ca
  configMap:
    name: {{ .configMapName }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "nbzx.volumeMounts" -}}
- name: config
  mountPath: /etc/nbzx/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /etc/nbzx/kafka-tls
  readOnly: true
{{- end }}
{{- if or .Values.privateCA.secretName .Values.privateCA.configMapName }}
- name: private-ca
  mountPath: /etc/nbzx/ca
  readOnly: true
{{- end }}
{{- end -}}
