"""The ports glance listens on, defined once."""

FRONTEND_PORT = 9292  # haproxy's frontend: the port in every endpoint URL
BACKEND_PORT = 9282  # glance-api behind haproxy, on the cluster binding's address
# haproxy's built-in Prometheus exporter, on the loopback only (the COS agent on the machine
# scrapes it); haproxy's own example port (doc/haproxy-exporter / addons/promex README).
METRICS_PORT = 8405
METRICS_ADDRESS = "127.0.0.1"
