"""The typed async client of Syncthing's REST API: the one seam for httpx.

One long-lived `httpx.AsyncClient` per Syncthing endpoint, with explicit timeouts. Every
httpx exception is translated here into `errors` (Unreachable, AuthFailed, Rejected,
BadResponse); every payload is decoded into `models`. Changes are targeted: PATCH, PUT
or DELETE of single objects, plus one batched PUT of a folder array. The whole config is
never fetched, modified and written back, and no response body is ever logged (config
and some events carry the API key and the GUI password hash).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from karmad import codec
from karmad.syncthing import validation
from karmad.syncthing.addresses import Endpoint
from karmad.syncthing.compat import Compat
from karmad.syncthing.errors import AuthFailed, BadResponse, Rejected, Unreachable
from karmad.syncthing.models import (
    Completion,
    ConfigView,
    Connections,
    DeviceConfig,
    DevicePatch,
    DeviceStats,
    FolderConfig,
    FolderErrors,
    FolderPatch,
    FolderStatus,
    Ignores,
    OptionsConfig,
    OptionsPatch,
    PendingDevice,
    PendingFolder,
    RawEvent,
    SystemStatus,
    SystemVersion,
)

T = TypeVar("T")

MAX_ERROR_TEXT: Final = 500
"""Syncthing's error bodies are short plain text; anything longer is cut."""
EVENT_MARGIN_S: Final = 10.0
"""The HTTP read timeout of a long poll stays this far above its `timeout=`."""

_encode = msgspec.json.Encoder().encode


class SyncthingClient:
    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        scan_timeout: float = 600.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.request_timeout = request_timeout
        self.scan_timeout = scan_timeout
        self._connect_timeout = connect_timeout
        if endpoint.uds is not None:
            transport = httpx.AsyncHTTPTransport(uds=str(endpoint.uds))
        else:
            transport = httpx.AsyncHTTPTransport(verify=tls if tls is not None else True)
        self._http = httpx.AsyncClient(
            base_url=endpoint.url,
            transport=transport,
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
            # Never route loopback calls through a proxy from the environment.
            trust_env=False,
            follow_redirects=False,
        )
        self._decoders: dict[Any, codec.Decoder[Any]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SyncthingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transport

    def _decoder(self, type_: Any) -> codec.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = codec.Decoder(type_)
        return decoder

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str | int]] = (),
        body: bytes | None = None,
        read_timeout: float | None = None,
    ) -> bytes:
        what = f"{method} {path}"
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request_timeout = httpx.Timeout(
            read_timeout if read_timeout is not None else self.request_timeout,
            connect=self._connect_timeout,
        )
        try:
            response = await self._http.request(
                method,
                path,
                params=list(params),
                content=body,
                headers=headers,
                timeout=request_timeout,
            )
        except httpx.TimeoutException:
            raise Unreachable(
                f"Syncthing at {self.endpoint} did not answer {what} in time"
            ) from None
        except httpx.TransportError as exc:
            raise Unreachable(
                f"Syncthing at {self.endpoint} is not reachable ({_describe(exc)})"
            ) from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"{what} to {self.endpoint} failed: {_describe(exc)}") from None
        if response.status_code in (401, 403):
            raise AuthFailed(
                f"Syncthing at {self.endpoint} refused the API key ({response.status_code})"
            )
        if response.status_code >= 400:
            text = response.text.strip()[:MAX_ERROR_TEXT] or response.reason_phrase
            raise Rejected(f"{what}: {text}", status=response.status_code)
        return response.content

    async def _get(
        self,
        path: str,
        type_: type[T] | Any,
        params: Sequence[tuple[str, str | int]] = (),
        *,
        read_timeout: float | None = None,
    ) -> Any:
        content = await self._send("GET", path, params=params, read_timeout=read_timeout)
        try:
            return self._decoder(type_).decode(content)
        except codec.InvalidData as exc:
            raise BadResponse(f"GET {path}: unexpected answer from Syncthing: {exc}") from None

    # ------------------------------------------------------------------ system

    async def ping(self) -> None:
        await self._send("GET", "/rest/system/ping")

    async def healthy(self, compat: Compat | None) -> None:
        """Raises unless the REST API answers (the cheapest endpoint the version has)."""
        path = compat.health_path if compat is not None else "/rest/system/ping"
        await self._send("GET", path)

    async def version(self) -> SystemVersion:
        result: SystemVersion = await self._get("/rest/system/version", SystemVersion)
        return result

    async def status(self, *, read_timeout: float | None = None) -> SystemStatus:
        result: SystemStatus = await self._get(
            "/rest/system/status", SystemStatus, read_timeout=read_timeout
        )
        return result

    async def connections(self, *, read_timeout: float | None = None) -> Connections:
        result: Connections = await self._get(
            "/rest/system/connections", Connections, read_timeout=read_timeout
        )
        return result

    async def device_stats(self) -> dict[str, DeviceStats]:
        result: dict[str, DeviceStats] = await self._get(
            "/rest/stats/device", dict[str, DeviceStats]
        )
        return result

    # ------------------------------------------------------------------ config: whole

    async def config_view(self) -> ConfigView:
        """Folders, devices and options in one read (the GUI section is never decoded)."""
        result: ConfigView = await self._get("/rest/config", ConfigView)
        return result

    # ------------------------------------------------------------------ config: devices

    async def devices(self) -> list[DeviceConfig]:
        result: list[DeviceConfig] = await self._get("/rest/config/devices", list[DeviceConfig])
        return result

    async def put_device(self, device: DeviceConfig) -> None:
        """Add or replace one device. Omitted fields take Syncthing's defaults."""
        device = validation.device(device)
        path = f"/rest/config/devices/{_seg(device.device_id)}"
        await self._send("PUT", path, body=_encode(device))

    async def patch_device(self, device_id: str, patch: DevicePatch) -> None:
        device_id = validation.device_id(device_id)
        patch = validation.device_patch(patch)
        await self._send("PATCH", f"/rest/config/devices/{_seg(device_id)}", body=_encode(patch))

    async def remove_device(self, device_id: str) -> None:
        device_id = validation.device_id(device_id)
        await self._send("DELETE", f"/rest/config/devices/{_seg(device_id)}")

    # ------------------------------------------------------------------ config: folders

    async def folders(self) -> list[FolderConfig]:
        result: list[FolderConfig] = await self._get("/rest/config/folders", list[FolderConfig])
        return result

    async def put_folder(self, folder: FolderConfig) -> None:
        """Add or replace one folder. Omitted fields take Syncthing's defaults."""
        folder = validation.folder(folder)
        await self._send("PUT", f"/rest/config/folders/{_seg(folder.id)}", body=_encode(folder))

    async def put_folders(self, folders: Sequence[FolderConfig]) -> None:
        """Add or replace many folders in one config write; the others are kept."""
        checked = [validation.folder(f) for f in folders]
        if len({f.id for f in checked}) != len(checked):
            raise Rejected("a folder ID appears twice in one batch", status=None)
        if checked:
            await self._send("PUT", "/rest/config/folders", body=_encode(checked))

    async def patch_folder(self, folder_id: str, patch: FolderPatch) -> None:
        folder_id = validation.folder_id(folder_id)
        patch = validation.folder_patch(patch)
        await self._send("PATCH", f"/rest/config/folders/{_seg(folder_id)}", body=_encode(patch))

    async def remove_folder(self, folder_id: str) -> None:
        """Syncthing keeps the folder's files on disk."""
        folder_id = validation.folder_id(folder_id)
        await self._send("DELETE", f"/rest/config/folders/{_seg(folder_id)}")

    # ------------------------------------------------------------------ config: options

    async def options(self) -> OptionsConfig:
        result: OptionsConfig = await self._get("/rest/config/options", OptionsConfig)
        return result

    async def patch_options(self, patch: OptionsPatch) -> None:
        patch = validation.options_patch(patch)
        await self._send("PATCH", "/rest/config/options", body=_encode(patch))

    # ------------------------------------------------------------------ connections

    async def pause_device(self, device_id: str) -> None:
        """Close the connection to a device and keep it closed until `resume_device`."""
        params = [("device", validation.device_id(device_id))]
        await self._send("POST", "/rest/system/pause", params=params)

    async def resume_device(self, device_id: str) -> None:
        params = [("device", validation.device_id(device_id))]
        await self._send("POST", "/rest/system/resume", params=params)

    # ------------------------------------------------------------------ cluster

    async def pending_devices(self) -> dict[str, PendingDevice]:
        result: dict[str, PendingDevice] = await self._get(
            "/rest/cluster/pending/devices", dict[str, PendingDevice]
        )
        return result

    async def pending_folders(self) -> dict[str, PendingFolder]:
        result: dict[str, PendingFolder] = await self._get(
            "/rest/cluster/pending/folders", dict[str, PendingFolder]
        )
        return result

    async def dismiss_pending_device(self, device_id: str) -> None:
        device_id = validation.device_id(device_id)
        await self._send("DELETE", "/rest/cluster/pending/devices", params=[("device", device_id)])

    async def dismiss_pending_folder(self, folder_id: str, device_id: str = "") -> None:
        params: list[tuple[str, str | int]] = [("folder", validation.offered_folder_id(folder_id))]
        if device_id:
            params.append(("device", validation.device_id(device_id)))
        await self._send("DELETE", "/rest/cluster/pending/folders", params=params)

    # ------------------------------------------------------------------ db

    async def folder_status(self, folder_id: str) -> FolderStatus:
        params = [("folder", validation.folder_id(folder_id))]
        result: FolderStatus = await self._get("/rest/db/status", FolderStatus, params)
        return result

    async def completion(self, folder_id: str, device_id: str = "") -> Completion:
        """How complete `device_id` (default: this device) is for the folder."""
        params: list[tuple[str, str | int]] = [("folder", validation.folder_id(folder_id))]
        if device_id:
            params.append(("device", validation.device_id(device_id)))
        result: Completion = await self._get("/rest/db/completion", Completion, params)
        return result

    async def folder_errors(self, folder_id: str) -> FolderErrors:
        params = [("folder", validation.folder_id(folder_id))]
        result: FolderErrors = await self._get("/rest/folder/errors", FolderErrors, params)
        return result

    async def scan(self, folder_id: str, paths: Sequence[str] = ()) -> None:
        """Scan a folder, or only `paths` in it; returns once Syncthing has scanned."""
        params: list[tuple[str, str | int]] = [("folder", validation.folder_id(folder_id))]
        params += [("sub", validation.sub_path(p)) for p in paths]
        await self._send("POST", "/rest/db/scan", params=params, read_timeout=self.scan_timeout)

    async def ignores(self, folder_id: str) -> Ignores:
        params = [("folder", validation.folder_id(folder_id))]
        result: Ignores = await self._get("/rest/db/ignores", Ignores, params)
        return result

    async def set_ignores(self, folder_id: str, lines: Sequence[str]) -> None:
        """Replace the folder's `.stignore` (per device, never synced)."""
        params = [("folder", validation.folder_id(folder_id))]
        if any("\n" in line or "\r" in line or "\0" in line for line in lines):
            raise Rejected("an ignore pattern must be one line", status=None)
        body = _encode({"ignore": list(lines)})
        await self._send("POST", "/rest/db/ignores", params=params, body=body)

    async def revert(self, folder_id: str) -> None:
        """Undo local changes in a receive-only folder (restores the owner's version)."""
        params = [("folder", validation.folder_id(folder_id))]
        await self._send("POST", "/rest/db/revert", params=params)

    async def override(self, folder_id: str) -> None:
        """Make this device's version of a send-only folder the global one again."""
        params = [("folder", validation.folder_id(folder_id))]
        await self._send("POST", "/rest/db/override", params=params)

    # ------------------------------------------------------------------ events

    async def events(
        self, since: int, timeout_s: int, *, limit: int = 0, disk: bool = False
    ) -> list[RawEvent]:
        """Long-poll the default (or disk) event stream for events after `since`."""
        params: list[tuple[str, str | int]] = [("since", since), ("timeout", timeout_s)]
        if limit:
            params.append(("limit", limit))
        path = "/rest/events/disk" if disk else "/rest/events"
        result: list[RawEvent] | None = await self._get(
            path,
            list[RawEvent] | None,
            params,
            read_timeout=timeout_s + self._connect_timeout + EVENT_MARGIN_S,
        )
        return result or []

    async def latest_event_id(self, *, disk: bool = False) -> int:
        """The id of the newest buffered event (0 when there is none), without waiting."""
        events = await self.events(0, 0, limit=1, disk=disk)
        return events[-1].id if events else 0


def _seg(value: str) -> str:
    """One URL path segment; validated IDs never need it, but it costs nothing."""
    return quote(value, safe="")


def _describe(exc: Exception) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
