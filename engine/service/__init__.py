"""Running as a service: the daemon, its health/metrics server and the scheduler."""
