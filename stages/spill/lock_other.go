//go:build !unix

package spill

import "os"

// lockDir does not lock on this platform: one Log a directory is the
// caller's to keep.
func lockDir(dir string, mode os.FileMode) (*os.File, error) { return nil, nil }
