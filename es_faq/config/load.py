"""Settings from where they are set: defaults, then an optional TOML file (ES_FAQ_CONFIG), then ES_FAQ_*
variables, old names included; and back to variables (`as_env`) for a child process."""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import fields
from pathlib import Path

from ..errors import ConfigError
from .settings import Settings, one_of

ENV_PREFIX = "ES_FAQ_"
# Old names still read (from the file or ES_FAQ_<OLD>), with a warning; the new name wins when both are set.
DEPRECATED = {"mysql_lock_ttl_s": "writer_lock_ttl_s"}
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def as_env(settings: Settings, omit: tuple[str, ...] = ()) -> dict[str, str]:
    """ES_FAQ_* variables that rebuild exactly these settings in a child process (a sync started by the API)."""
    env = {}
    for f in fields(Settings):
        if f.name in omit:
            continue
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[ENV_PREFIX + f.name.upper()] = "" if value is None else str(value)
    return env


def _cast(name: str, kind, raw):
    kind = str(kind)
    if "None" in kind and str(raw).strip() == "":  # as_env writes an unset optional setting as ""
        return None
    try:
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            value = BOOLEANS.get(str(raw).strip().lower())
            if value is None:  # a typo ("ture") must not quietly turn a feature off
                raise ValueError(f"use one of {one_of(BOOLEANS)}")
            return value
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if "Path" in kind:
            return Path(str(raw)).expanduser() if str(raw) else None
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"setting {name}={raw!r} is not a valid {kind}: {exc}") from None


def _deprecated(old: str, new: str) -> None:
    logging.getLogger("es_faq.config").warning(f"{old} is deprecated: set {new} instead",
                                               extra={"deprecated": old, "use": new})


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build Settings from the optional file named by ES_FAQ_CONFIG and ES_FAQ_* variables."""
    env = dict(os.environ if env is None else env)
    values: dict = {}
    config_file = env.get(ENV_PREFIX + "CONFIG")
    if config_file:
        try:
            values.update(tomllib.loads(Path(config_file).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
    for old, new in DEPRECATED.items():
        if old in values:
            _deprecated(f"{old} in {config_file}", new)
            values.setdefault(new, values.pop(old))
        if ENV_PREFIX + old.upper() in env:
            _deprecated(ENV_PREFIX + old.upper(), ENV_PREFIX + new.upper())
            if ENV_PREFIX + new.upper() not in env:
                values[new] = env[ENV_PREFIX + old.upper()]
    known = {f.name: f for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown settings in {config_file}: {', '.join(sorted(unknown))}")
    for name in known:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    return Settings(**{k: _cast(k, known[k].type, v) for k, v in values.items()})
