"""`hil serve`: a read-only dashboard of the embedded store (rigs, releases, runs, trends, flaky tests)."""
