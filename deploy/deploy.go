// Package deploy ships the files that run Causeway as an always-on service
// — the systemd unit, its environment file, the sysusers entry and the
// logrotate config — embedded, so a program can install them (and the
// tests of this package verify them with systemd-analyze and logrotate).
package deploy

import "embed"

// Files holds causeway.service, causeway.env.example,
// sysusers.d/causeway.conf and logrotate.d/causeway.
//
//go:embed causeway.service causeway.env.example sysusers.d/causeway.conf logrotate.d/causeway
var Files embed.FS
