"""What every netbox-zabbix-stream process shares: the `nbzx` CLI, configuration, logging."""

__version__ = "0.1.0"
