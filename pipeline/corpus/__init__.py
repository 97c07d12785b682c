"""The merged corpus as one recipe: `ssiw corpus check` and `ssiw corpus build` (issue #22)."""
