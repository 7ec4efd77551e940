"""Site configuration: YAML in, validated models out."""

from gateway.config.loader import ConfigError, load_config, parse_config
from gateway.config.model import Config

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]
