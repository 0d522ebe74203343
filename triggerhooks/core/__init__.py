"""The core of a session: value types, the rules, leases, and what runs a task and
follows a commit. It imports nothing from storages, runners, the manager or plugins."""
