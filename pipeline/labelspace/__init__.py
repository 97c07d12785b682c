"""labelspace stage."""
