"""What every command shares: its configuration, loaded once, with logging set up from it."""

from __future__ import annotations

import argparse

from nbzx.common.config import Config, ConfigError, load_config, zabbix_servers
from nbzx.common.logging import setup_logging


def load(args: argparse.Namespace) -> Config:
    """The config of `--config` (or $NBZX_CONFIG, or the defaults), with logging set up from it."""
    cfg = load_config(args.config)
    setup_logging(cfg.logging.level, cfg.logging.json)
    return cfg


def servers(cfg: Config, names: list[str] | None) -> list[str]:
    """The Zabbix servers a `--server` option names, each one the config has (none: [])."""
    unknown = sorted(set(names or []) - set(zabbix_servers(cfg)))
    if unknown:
        have = ", ".join(zabbix_servers(cfg))
        raise ConfigError(f"--server: no Zabbix server named {', '.join(unknown)} (the config has {have})")
    return list(names or [])
