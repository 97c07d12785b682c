"""Small generated fixtures for the reader tests, written into a test's tmp_path in each dataset's
real on-disk layout (for formats with no real sample in shared/fixtures/real)."""
