"""What every command shares: its configuration, loaded once, with logging set up from it."""

from __future__ import annotations

import argparse

from nbzx.common.config import Config, load_config
from nbzx.common.logging import setup_logging


def load(args: argparse.Namespace) -> Config:
    """The config of `--config` (or $NBZX_CONFIG, or the defaults), with logging set up from it."""
    cfg = load_config(args.config)
    setup_logging(cfg.logging.level, cfg.logging.json)
    return cfg
