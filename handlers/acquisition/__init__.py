"""Disk acquisition: snapshot every volume, move the snapshots into the forensic account, lock and image them."""
