"""glance-api, haproxy and their files; never imports ops, relations or reconcile."""
