"""Observability as data: Prometheus rules, Grafana dashboards, Grafana/Alertmanager values, logs.

- :mod:`.queries`: the PromQL of every panel and rule, built once so that dashboards, alerts and
  the live tests run the same expressions over the metrics the real Envoy sidecar, the serving
  runtime, kube-state-metrics, the kubelet (cAdvisor), DCGM and Karpenter export.
- :mod:`.rules`: the cluster's recording and alerting rules (rule files of the chart's Prometheus)
  and each API's constants (its bounds and alert thresholds, from its spec).
- :mod:`.dashboards`: the per-API and cluster dashboards (grafana-foundation-sdk builders).
- :mod:`.addons`: values of the Grafana and DCGM exporter charts, the Alertmanager configuration,
  the rule and dashboard ConfigMaps.

Pure functions of specs and names; the Cluster component and the ApiObservability component wire
them into resources. docs/observability.md lists every panel and alert.
"""
