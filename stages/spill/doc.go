// Package spill is a durable, bounded, ordered log of records on local
// disk: where a batcher puts the messages its sink cannot take while the
// sink is down, to acknowledge them as held and replay them, in order,
// when it returns. One Log serves one batcher; its records are opaque
// bytes, encoded and decoded by the caller.
//
//	l, err := spill.Open(dir, spill.Options{MaxBytes: 1 << 30})
//	err = l.Append(encoded)             // held, on disk, once it returns nil
//	recs, err := l.Peek(500)            // the oldest records, not yet removed
//	err = l.Ack(recs[len(recs)-1].End)  // consumed: never replayed again
//
// # Layout
//
// The directory holds numbered segment files (00000000000000000001.seg,
// ...), a checkpoint file, head, and a lock file, lock. Each Append writes
// its records as one group of frames at the end of the newest segment: a
// 9-byte header (the length, a flag marking the group's last record, a
// CRC-32C of both and of the record) and the record. Past Options.SegmentBytes the next Append
// starts a new segment. Ack writes the position it consumed to the
// checkpoint (atomically: a temporary file renamed over it) and then
// deletes the segments wholly before that position.
//
// # Durability
//
// Under the default SyncPolicy, SyncAlways:
//
//   - A group is held once Append returned nil: it is fsynced, and survives
//     a crash of the process, of the operating system and a power cut.
//   - A group is all or nothing. A crash during Append can leave part of
//     it on disk; Open finds it by its framing, cuts it off, and logs and
//     counts the bytes (Stats.TornBytes). Every group appended before it
//     is kept. (A group the crash left whole is kept too, though its
//     Append never returned: at-least-once, as for a sink.)
//   - Records are replayed in the order they were appended, across
//     segments and restarts; a restart with records held replays them
//     before any appended after it.
//   - Once Ack(p) returned nil, no record up to p is replayed, not even
//     after a crash. Records after the last Ack are replayed after a
//     crash, even those the sink took before it: a restart never loses a
//     held record, and replays again at most the records Peek returned
//     after the last Ack (at-least-once for them). A sink that must not
//     see duplicates keys its writes (an idempotent upsert, an idempotent
//     producer).
//   - Bytes that change on disk after they were written (a failing disk,
//     another program) are detected by their checksum: Open cuts a
//     segment at the first damaged frame and logs the records after it as
//     lost, at error level; Peek reports ErrCorrupt.
//
// Under SyncNone the same holds for a crash of the process only.
//
// The cost, under SyncAlways: one fsync per Append (group records to
// amortize it), one more and a directory fsync when a segment is created,
// and two fsyncs per Ack. Space: Options.MaxBytes of disk, counting
// framing of 9 bytes a record and, until their segment is deleted, the
// consumed records of the oldest segment. Memory: one group's frames while
// appending, one Peek's records while reading, and a 64 KiB read buffer.
//
// # Concurrency
//
// A Log is safe for one writer and one reader at the same time: a batcher
// can spill new messages while a replayer drains old ones. Append never
// waits for Peek or Ack, nor they for Append's fsync. Wait lets the
// reader sleep until there is something to replay.
//
// One Log at a time may use a directory: Open locks it, and fails with
// ErrLocked while another Log, in this process or another, has it open.
package spill
