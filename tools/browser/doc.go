// Package browser holds the browser test of the pir agent's live page: a
// real headless Chromium, driven with chromedp, reads the page of a
// "pir-agent" that watches a group of "pir join" members on a LAN of
// network namespaces (internal/nslan). It needs root, ip(8), nsenter(1) and
// Chromium (Debian's chromium package, which test.sh installs) and skips,
// saying why, without them:
//
//	sudo go test ./browser/
//
// Chromium runs inside the agent host's namespace, so the page, its API
// and everything the browser itself might send stay inside the lab.
package browser
