// Package browser holds the end-to-end test of the Audit Trail page: the fake Flowker with the
// sidecar in front of it (real sqlite plugin process) is filled with realistic traffic through
// the sidecar, then the page is driven in a real headless Chromium (Debian's chromium, through
// chromedp) and everything it shows is compared with what the audit API answers.
//
// The test saves a screenshot of the populated page to $FLOWKER_AUDIT_SCREENSHOT (default: a
// temporary directory) and, with FLOWKER_AUDIT_UPDATE_SCREENSHOT=1, also to docs/audit-trail.png,
// the image the README shows. FLOWKER_AUDIT_SKIP_BROWSER=1 skips it where Chromium cannot run.
package browser
