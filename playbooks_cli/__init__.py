"""The `playbooks` command: a thin click shell over `playbooks_worker`."""
