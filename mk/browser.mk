# A headless browser for the test that opens the bench's report.html (tests/e2e/test_bench.py).
# Included from the top Makefile.  `make test` installs Debian's chromium when it is missing;
# `make demo` does not need it.  Without apt (not Debian, not root) the test skips and says why.
.PHONY: browser
TEST_SETUP += browser

browser:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || { \
	  echo "browser: installing Debian's chromium for the report test (once)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "browser: chromium could not be installed; the report test will skip and say so" >&2; }
