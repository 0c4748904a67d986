// Package browsertest tests the dashboard page in a real browser: Debian's
// Chromium, headless, driven by chromedp. It is a module of its own so that
// chromedp stays out of the core module's requirements; it has no code
// besides its tests.
package browsertest
