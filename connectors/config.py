"""The connectors file (``LIVESALES_CONNECTORS_FILE``, contract §7), parsed once at start.

``{"connectors": [{"platform", "app_key", "app_secret" | "app_secret_env", "api_base",
"shops": [{"shop_id", "merchant_id", "region": {"district", "township"}, "live_only"}]}]}``.
快手 needs two more secrets than the contract names, its API ``sign_secret`` and its push
``msg_secret`` (PLATFORMS.md §2), and each 快手 shop the ``refresh_token`` its merchant's
authorisation gave (快手 has no self-authorisation like 抖店's ``authorization_self``). Every
secret may instead name an env var (``<field>_env``). Unknown fields are refused: a typo like
``live_onyl`` would otherwise silently count a shop's every order.

A bad file raises :class:`ground.config_errors.ConfigError` naming the file and the field;
the CLI prints its one line and exits 2. Secrets are ``SecretStr``: never in a repr or log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator

from ground.config_errors import ConfigError, location, message

ENV_VAR = "LIVESALES_CONNECTORS_FILE"
PLATFORMS = ("douyin", "kuaishou")

_Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
_Name = Annotated[str, Field(min_length=1, max_length=200)]
_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


def _secret(values: dict[str, Any], name: str, required: bool) -> None:
    """Resolve ``name`` from ``name`` or the env var named by ``name_env`` (not both)."""
    env_name = values.pop(f"{name}_env", None)
    if env_name is not None:
        if name in values:
            raise ValueError(f"give {name} or {name}_env, not both")
        if not isinstance(env_name, str) or not env_name:
            raise ValueError(f"{name}_env must name an environment variable")
        value = os.environ.get(env_name)
        if not value:
            raise ValueError(f"{name}_env names {env_name}, which is not set")
        values[name] = value
    elif required and name not in values:
        raise ValueError(f"{name} (or {name}_env) is required")


class Region(BaseModel):
    model_config = _FROZEN
    district: _Name
    township: _Name | None = None


class ShopConfig(BaseModel):
    """One shop of an app: whose orders, counted under which merchant and place."""

    model_config = _FROZEN
    shop_id: _Id
    merchant_id: _Id
    region: Region
    live_only: bool = True
    refresh_token: SecretStr | None = None  # 快手: from the merchant's authorisation

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            _secret(data, "refresh_token", required=False)
        return data

    @property
    def key(self) -> str:
        return self.shop_id


class AppConfig(BaseModel):
    """One platform app (one push URL, one set of secrets) and the shops it serves."""

    model_config = _FROZEN
    platform: Literal["douyin", "kuaishou"]
    app_key: _Id
    app_secret: SecretStr
    api_base: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    sign_secret: SecretStr | None = None  # 快手 API signing (signSecret)
    msg_secret: SecretStr | None = None  # 快手 push AES key (msgSecret, base64)
    shops: Annotated[tuple[ShopConfig, ...], Field(min_length=1)]
    _by_id: dict[str, ShopConfig] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            _secret(data, "app_secret", required=True)
            kuaishou = data.get("platform") == "kuaishou"
            _secret(data, "sign_secret", required=kuaishou)
            _secret(data, "msg_secret", required=kuaishou)
            if isinstance(data.get("shops"), list):
                data["shops"] = tuple(data["shops"])
        return data

    @model_validator(mode="after")
    def _unique_shops(self) -> AppConfig:
        ids = [s.shop_id for s in self.shops]
        dup = next((i for i in ids if ids.count(i) > 1), None)
        if dup is not None:
            raise ValueError(f"shop {dup} is listed twice")
        self._by_id = {s.shop_id: s for s in self.shops}
        if self.platform == "kuaishou":
            missing = [s.shop_id for s in self.shops if s.refresh_token is None]
            if missing:
                raise ValueError(f"快手 shop {missing[0]} needs refresh_token (or refresh_token_env)")
        return self

    def shop(self, shop_id: str) -> ShopConfig | None:
        """Asked twice per pushed message: a dict, built with the (frozen) config."""
        return self._by_id.get(shop_id)


class ConnectorsConfig(BaseModel):
    model_config = _FROZEN
    connectors: tuple[AppConfig, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _tuples(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("connectors"), list):
            data = {**data, "connectors": tuple(data["connectors"])}
        return data

    @model_validator(mode="after")
    def _one_shop_one_app(self) -> ConnectorsConfig:
        seen: set[tuple[str, str]] = set()
        for app in self.connectors:
            for shop in app.shops:
                if (app.platform, shop.shop_id) in seen:
                    raise ValueError(f"{app.platform} shop {shop.shop_id} is in two connectors")
                seen.add((app.platform, shop.shop_id))
        return self

    def apps(self, platform: str) -> tuple[AppConfig, ...]:
        return tuple(a for a in self.connectors if a.platform == platform)

    def find(self, platform: str, shop_id: str) -> tuple[AppConfig, ShopConfig] | None:
        for app in self.apps(platform):
            shop = app.shop(shop_id)
            if shop is not None:
                return app, shop
        return None

    def shops(self) -> list[tuple[AppConfig, ShopConfig]]:
        return [(app, shop) for app in self.connectors for shop in app.shops]


def parse_connectors(data: Any, where: str) -> ConnectorsConfig:
    """Validate already-parsed JSON; ``where`` names its origin in the error."""
    try:
        return ConnectorsConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = location(tuple(err["loc"])) or "connectors"
        raise ConfigError(where, f"{field}: {message(err)}") from None


def load_connectors(path: str | Path) -> ConnectorsConfig:
    """Read and validate the connectors file; any fault is one ConfigError line."""
    import json

    where = f"{ENV_VAR}={path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, f"cannot read the file: {exc.__class__.__name__}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(where, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(where, 'expected a JSON object {"connectors": [...]}')
    return parse_connectors(data, where)
