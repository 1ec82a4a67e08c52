{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "dco.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name used for every object of the release. The release name alone when it already
contains the chart name (the usual `helm install digital-channels-operator ...`).
*/}}
{{- define "dco.fullname" -}}
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

{{- define "dco.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object of the chart.
*/}}
{{- define "dco.labels" -}}
helm.sh/chart: {{ include "dco.chart" . }}
{{ include "dco.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: digital-channels
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator pods (Deployment, Service, NetworkPolicy).
*/}}
{{- define "dco.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dco.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dco.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository, then @digest when given, else :tag (default: the chart's appVersion).
*/}}
{{- define "dco.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default "" | toString | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Leader election is forced on when more than one replica runs: two replicas must never reconcile
at once.
*/}}
{{- define "dco.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The watched namespaces, sorted and without duplicates; empty means cluster-wide.
*/}}
{{- define "dco.watchNamespaces" -}}
{{- .Values.watchNamespaces | default list | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
Where the extra CA bundle is mounted.
*/}}
{{- define "dco.extraCaDir" -}}/etc/dc-operator/extra-ca{{- end }}

{{/*
Checks on combinations of values that the schema cannot express.
*/}}
{{- define "dco.validate" -}}
{{- if and .Values.extraCaBundle.secretName .Values.extraCaBundle.configMapName }}
{{- fail "extraCaBundle: set secretName or configMapName, not both" }}
{{- end }}
{{- if and .Values.nexusRestart.enabled (not .Values.nexusRestart.namespaces) }}
{{- fail "nexusRestart.enabled needs nexusRestart.namespaces: the namespaces of the Nexus Deployments the operator may restart" }}
{{- end }}
{{- end }}

{{/*
The rules on the operator's own kinds. Always a ClusterRole, also with watchNamespaces: when a
watched namespace is deleted, its Roles go at once while the environments and tenants wait for the
operator to remove its finalizer, which it could then no longer do. docs/install.md explains each
rule; tests/packaging.rs holds the same set and fails when this one changes.
*/}}
{{- define "dco.resourceRules" -}}
# DigitalChannelsEnvironment and DigitalChannelsTenant: list+watch feed the controllers' caches (and
# the start-up check that the CRDs are installed), get reads one object, patch/update add and remove
# the finalizer digitalchannels.dev/cleanup. No create/delete: users own these objects.
- apiGroups: ["digitalchannels.dev"]
  resources: ["digitalchannelsenvironments", "digitalchannelstenants"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Their status subresource: conditions, observedGeneration, contactCenterId, outputSecretName, ...
- apiGroups: ["digitalchannels.dev"]
  resources: ["digitalchannelsenvironments/status", "digitalchannelstenants/status"]
  verbs: ["get", "patch", "update"]
# Setting an owner reference with blockOwnerDeletion (the output Secret is owned by its tenant)
# requires update on the owner's finalizers subresource when the OwnerReferencesPermissionEnforcement
# admission plugin is on.
- apiGroups: ["digitalchannels.dev"]
  resources: ["digitalchannelsenvironments/finalizers", "digitalchannelstenants/finalizers"]
  verbs: ["update"]
# Namespaces, get only: a cleanup whose Secrets can no longer be read lets go (CleanupSkipped) only
# when the namespace itself is being deleted, instead of holding it Terminating forever.
- apiGroups: [""]
  resources: ["namespaces"]
  {{- with (include "dco.watchNamespaces" . | fromJsonArray) }}
  resourceNames: {{ . | toJson }}
  {{- end }}
  verbs: ["get"]
{{- end }}

{{/*
The rules the operator needs in every namespace it watches: in the ClusterRole when it watches the
whole cluster, a Role in each namespace otherwise (so it reads Secrets only there).
*/}}
{{- define "dco.watchRules" -}}
# Secrets: read the referenced ones (ops credentials, database URL, CA, tenant credentials, UCS
# API key) and watch them so that a rotated password is picked up at once; create/update/patch the
# generated OAuth client secret and the tenant's output Secret. No delete: both are removed by the
# garbage collector through their owner reference.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
# Events on the custom resources, written on condition transitions (patch: deduplicated series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
