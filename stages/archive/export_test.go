package archive

import "os"

// File is what the Writer needs of an open file.
type File = file

// SetOpenFile replaces how w opens its active file from now on (the next
// Reopen, or the open after a failed write).
func SetOpenFile[T any](w *Writer[T], open func(path string, mode os.FileMode) (File, error)) {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	w.a.openFile = open
}
