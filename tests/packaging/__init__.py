"""The built wheel, installed as a user installs it (run by .ci/run with SLC_DIST_DIR set)."""
