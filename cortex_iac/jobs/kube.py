"""The gateway's calls to the Kubernetes API server: plain REST with httpx.

Six calls on objects that are already plain dicts (``jobs.render``), so no client library: the
paths are Kubernetes' stable ``batch/v1`` and ``v1`` ones, and the RBAC rules the gateway is given
(``contract.GATEWAY_RBAC_RULES``) are exactly these verbs. The ServiceAccount token is read from its
file on every call because the kubelet rotates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from cortex_iac.errors import CortexError


class KubeError(CortexError):
    """The API server refused or failed a call."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class KubeClient:
    """Jobs, ConfigMaps and pods of one namespace."""

    def __init__(self, base_url: str, namespace: str, *, token_file: str = "", ca_file: str = "",
                 timeout: float = 10.0) -> None:
        verify: Any = ca_file if ca_file and Path(ca_file).is_file() else True
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), verify=verify, timeout=timeout)
        self._namespace = namespace
        self._token_file = token_file

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self) -> dict[str, str]:
        if self._token_file and Path(self._token_file).is_file():
            return {"Authorization": "Bearer " + Path(self._token_file).read_text().strip()}
        return {}

    def _path(self, group: str, resource: str, name: str = "") -> str:
        prefix = "/api/v1" if group == "" else f"/apis/{group}"
        return f"{prefix}/namespaces/{self._namespace}/{resource}" + (f"/{name}" if name else "")

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        response = await self._http.request(method, path, headers=self._headers(), **kwargs)
        if response.status_code == 404 and method in ("GET", "DELETE"):
            return None
        if response.status_code >= 300:
            raise KubeError(f"{method} {path}: {response.status_code} {response.text[:500]}", response.status_code)
        body: dict[str, Any] = response.json()
        return body

    async def create_job(self, job: dict[str, Any]) -> dict[str, Any]:
        created = await self._call("POST", self._path("batch/v1", "jobs"), json=job)
        assert created is not None
        return created

    async def get_job(self, name: str) -> dict[str, Any] | None:
        return await self._call("GET", self._path("batch/v1", "jobs", name))

    async def delete_job(self, name: str) -> bool:
        """Delete the Job and (in the background) its pods and owned ConfigMap; False if it was gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        return await self._call("DELETE", self._path("batch/v1", "jobs", name), json=body) is not None

    async def create_config_map(self, config_map: dict[str, Any]) -> dict[str, Any]:
        created = await self._call("POST", self._path("", "configmaps"), json=config_map)
        assert created is not None
        return created

    async def delete_config_map(self, name: str) -> bool:
        return await self._call("DELETE", self._path("", "configmaps", name)) is not None

    async def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        listed = await self._call("GET", self._path("", "pods"), params={"labelSelector": label_selector})
        return list((listed or {}).get("items", []))
