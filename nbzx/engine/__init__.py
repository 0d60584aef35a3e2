"""The edges that talk to NetBox and Zabbix, and the sync engine that drives them for one host key."""
