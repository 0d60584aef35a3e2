"""The operator console: jobs, hosts and dead letters as web pages and a JSON API (DESIGN §7)."""
