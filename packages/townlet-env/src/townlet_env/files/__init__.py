"""Files in and out, safely: atomic outputs that never replace silently, and `.npz` archives read
with every size checked before anything is inflated (see docs/reliability.md)."""

from townlet_env.files.npz import Archive, ArchiveError, read_regular_file
from townlet_env.files.outputs import OutputError, atomic_output, check_output

__all__ = ["Archive", "ArchiveError", "OutputError", "atomic_output", "check_output", "read_regular_file"]
