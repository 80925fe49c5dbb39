"""Model bundles: signed manifests, safe archives, the on-device store with canary checks and rollback."""
