"""The reference cloud: a small upstream that stores a site's uplink,
acknowledges it, keeps its own ledger, and signs and sends commands."""
