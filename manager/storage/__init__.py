"""Vfolders in the manager: storage proxies, their client, vfolder use cases, session mounts."""
