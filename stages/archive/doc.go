// Package archive is a batch handler that keeps every message it
// acknowledges in a directory of gzip-compressed JSON-lines files: the
// always-on listener's raw log, ready for logrotate, for object storage and
// for a replay.
//
// # Durability
//
// Each batch becomes one complete gzip member appended to the active file,
// DIR/<name>.jsonl.gz, and HandleBatch returns only after the member has
// been written and fsync'ed: a message is acknowledged only once it is on
// disk. Concatenated members are a valid gzip file (gzip -t, zcat and Go's
// gzip.Reader read them as one stream), so a crash can lose at most the
// member being written, whose messages were never acknowledged. When the
// Writer opens the active file — at New, and at each Reopen of a file it did
// not write itself — it decodes the members one by one, and cuts off a torn
// last member, logging and counting the bytes (Stats.TornBytes). If valid
// members follow damaged bytes, nothing is cut: the file is moved aside
// under a finished name for Verify to report, and a new one is started.
//
// A write that fails (disk full, I/O error) fails the whole batch with an
// error naming the file; the part of the member that made it to the file is
// cut off again, so the file stays valid, and the next batch opens the file
// afresh: once there is space (or the directory is writable again) the
// archive goes on by itself.
//
// # Rotation
//
// The Writer rotates by itself when Config.RotateSize or Config.RotateEvery
// says so: it renames the active file to DIR/<name>-<UTC time>.jsonl.gz
// (millisecond resolution, moved on if taken, so names are unique and sort
// in rotation order), opens a new active file, and runs Config.OnRotate and
// Config.OnRotateCommand on the finished file (upload it, checksum it).
//
// It also works with logrotate's default scheme, rename then signal
// ("create" mode): logrotate renames DIR/<name>.jsonl.gz, and its
// postrotate script sends SIGHUP, on which the program calls Reopen. Until
// the signal the Writer appends to the renamed file (the file descriptor
// follows the rename); after it, to a new file under the old name. Every
// batch lands wholly in one of the two.
//
// It does not work with logrotate's "copytruncate". That mode copies the
// file and then truncates it in place while the process keeps appending to
// it: the batches appended between the copy and the truncation are in
// neither file (acknowledged, then lost); the copy can end inside a member
// being written (a torn copy); and a writer that keeps its own file offset
// rather than opening with O_APPEND, as many loggers do, goes on writing at
// its old offset, so the truncated file starts with a hole of zero bytes and
// is no longer valid gzip. This Writer opens with O_APPEND, which avoids the
// hole but not the loss. Use rename and SIGHUP (see
// deploy/logrotate.d/causeway in the repository).
//
// # Concurrency
//
// A Writer is safe for any number of batch processors. Each compresses its
// own batch in parallel with the others; appending to the file (write and
// fsync), rotating and reopening take turns under one mutex, so members
// never interleave and an fsync is never shared by two batches.
//
// # Checking an archive
//
// Verify reads every *.gz file of a directory and reports, per file and in
// total, complete members, lines, JSON lines, ids (found by a JSON field
// path such as "data.id" or a function) and duplicates across files, and
// the offset, length and cause of any damage.
package archive
