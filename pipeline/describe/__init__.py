"""describe stage."""
