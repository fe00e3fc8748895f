"""The ingest worker: the consume loop (``loop``) and the lease that lets one worker at a time
apply an ordered stream (``leases``). Imports no web framework."""
