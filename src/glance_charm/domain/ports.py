"""The ports glance listens on, defined once."""

FRONTEND_PORT = 9292  # haproxy's frontend: the port in every endpoint URL
BACKEND_PORT = 9282  # glance-api behind haproxy, on the cluster binding's address
