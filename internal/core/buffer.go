package core

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/internal/backoff"
	"github.com/causeway-go/causeway/internal/notify"
	"github.com/causeway-go/causeway/internal/ratelog"
)

// RateLimit allows at most Messages messages per Interval out of the
// producer stage. The zero value means no limit.
type RateLimit struct {
	Messages int
	Interval time.Duration
}

// Enabled reports whether the limit limits anything.
func (r RateLimit) Enabled() bool { return r.Messages > 0 && r.Interval > 0 }

// Validate reports whether r is usable: the zero RateLimit (no limit), or
// Messages > 0 and Interval > 0.
func (r RateLimit) Validate() error {
	if r == (RateLimit{}) || r.Enabled() {
		return nil
	}
	return fmt.Errorf("stages: rate limit needs Messages > 0 and Interval > 0 (or both zero for none), got %d per %v", r.Messages, r.Interval)
}

// promiseLease is how long demand told to one producer goroutine is its
// alone. A producer that has not emitted it by then (an idle Kafka
// partition, a slow source) has it offered to the others; what it emits
// later within the old promise still waits for room rather than drop.
const promiseLease = 10 * time.Millisecond

// BufferConfig configures a producer-stage buffer.
type BufferConfig[T any] struct {
	// Size is how many messages the buffer holds; a partitioned buffer
	// gives each partition Size/Consumers (at least 1).
	Size int
	// Keep is what a full buffer does with a new message.
	Keep Keep
	// Consumers is the number of processors taking from the buffer.
	Consumers int
	// PartitionBy, if set, pins each message to processor
	// PartitionBy(m) % Consumers. A panic in it fails the message, which
	// goes to partition 0.
	PartitionBy func(*Message[T]) uint64
	// OnDrop sees every message the buffer drops. It runs on the producer's
	// goroutine and must not block; the slice is valid only during the call.
	// A panic in it is logged and contained.
	OnDrop func(dropped []Message[T])
	// RateLimit bounds how many messages leave the buffer per interval.
	RateLimit RateLimit
	// Logger reports drops, at most once per DropLogInterval.
	Logger *slog.Logger
	// DropLogInterval is the least time between two drop reports (default 1s).
	DropLogInterval time.Duration
	// OnDemand, if set, sees every demand a producer is told (for tests and
	// tracing). It runs with the buffer locked and must not block.
	OnDemand func(n int)
}

// Buffer is the producer stage's buffer: it holds what producers emitted
// until processors ask for it, keeps the demand accounts, applies the drop
// policy and the rate limit.
type Buffer[T any] struct {
	mu          sync.Mutex
	rings       []ring[T]
	capacity    int
	keep        Keep
	partition   func(*Message[T]) uint64
	outstanding []int // per consumer: asked for and not yet delivered
	total       int   // sum of outstanding
	promised    int   // demand told to producers and not yet emitted
	emitters    []*Emitter[T]
	buffered    int
	maxBuffered int
	emitted     int64
	delivered   int64
	closed      bool // no more input: Take ends once empty
	stopping    bool // the topology is shutting down: the rate limit is lifted

	waiting   []int // consumers blocked in Take, oldest first
	isWaiting []bool
	wake      []chan struct{}
	// inbox holds the slice a waiting consumer takes into: while the buffer
	// is empty, emitters copy straight into it, saving a trip through the
	// ring.
	inbox [][]Message[T]

	demand      notify.Notifier // demand may have grown: producers in Demand look again
	space       notify.Notifier // room may have freed: Block emitters look again
	rateChanged notify.Notifier // the rate limit changed or was lifted

	rate        RateLimit
	windowStart time.Time
	windowUsed  int

	onDemand func(int)

	// drop accounting, outside mu
	dropped  atomic.Int64
	failed   atomic.Int64
	onDrop   func([]Message[T])
	logger   *slog.Logger
	dropLog  ratelog.Limiter
	panicLog ratelog.Limiter
}

// NewBuffer returns a buffer for cfg, which must be valid (Size and
// Consumers > 0).
func NewBuffer[T any](cfg BufferConfig[T]) *Buffer[T] {
	b := &Buffer[T]{
		keep:        cfg.Keep,
		partition:   cfg.PartitionBy,
		outstanding: make([]int, cfg.Consumers),
		isWaiting:   make([]bool, cfg.Consumers),
		wake:        make([]chan struct{}, cfg.Consumers),
		inbox:       make([][]Message[T], cfg.Consumers),
		rate:        cfg.RateLimit,
		onDrop:      cfg.OnDrop,
		onDemand:    cfg.OnDemand,
		logger:      cfg.Logger,
		dropLog:     ratelog.Limiter{Every: cfg.DropLogInterval},
	}
	for i := range b.wake {
		b.wake[i] = make(chan struct{}, 1)
	}
	if cfg.PartitionBy != nil {
		per := max(1, cfg.Size/cfg.Consumers)
		b.rings = make([]ring[T], cfg.Consumers)
		for i := range b.rings {
			b.rings[i] = newRing[T](per)
		}
	} else {
		b.rings = []ring[T]{newRing[T](cfg.Size)}
	}
	for i := range b.rings {
		b.capacity += b.rings[i].capacity
	}
	return b
}

// NewEmitter returns an emitter for one producer goroutine.
func (b *Buffer[T]) NewEmitter() *Emitter[T] {
	e := &Emitter[T]{b: b}
	b.mu.Lock()
	b.emitters = append(b.emitters, e)
	b.mu.Unlock()
	return e
}

// Ask adds n to consumer id's outstanding demand.
func (b *Buffer[T]) Ask(id, n int) {
	b.mu.Lock()
	b.outstanding[id] += n
	b.total += n
	b.announceDemandLocked()
	b.mu.Unlock()
}

// announceDemandLocked wakes producers waiting in Demand if there is demand
// for them. b.mu must be held.
func (b *Buffer[T]) announceDemandLocked() {
	if b.demand.Waiting() && b.unmetDemand() > 0 {
		b.demand.Broadcast()
	}
}

// Take appends to dst up to consumer id's outstanding demand of buffered
// messages, blocking until there is at least one. It returns ErrClosed when
// the buffer is closed and holds nothing more for id, or ctx's error.
func (b *Buffer[T]) Take(ctx context.Context, id int, dst []Message[T]) ([]Message[T], error) {
	for {
		b.mu.Lock()
		r := &b.rings[0]
		if b.partition != nil {
			r = &b.rings[id]
		}
		want := b.outstanding[id]
		if r.n > 0 && want > 0 {
			k := min(want, r.n)
			if b.partition == nil && len(b.waiting) > 0 {
				// Others are waiting too: take a fair share, so a few
				// messages spread over idle processors instead of queueing
				// behind one (it matters when handlers are slow).
				k = min(k, (r.n+len(b.waiting))/(len(b.waiting)+1))
			}
			if b.rateActive() {
				var wait time.Duration
				if k, wait = b.allowLocked(k); k == 0 {
					changed := b.rateChanged.Wait()
					b.mu.Unlock()
					if err := backoff.Sleep(ctx, wait, changed); err != nil {
						return dst, err
					}
					continue
				}
			}
			dst = r.popInto(dst, k)
			b.outstanding[id] -= k
			b.total -= k
			b.buffered -= k
			b.delivered += int64(k)
			b.space.Broadcast()
			b.announceDemandLocked()
			if r.n > 0 {
				b.wakeConsumers()
			}
			b.mu.Unlock()
			return dst, nil
		}
		if r.n == 0 && b.closed {
			b.mu.Unlock()
			return dst, ErrClosed
		}
		if !b.isWaiting[id] {
			b.isWaiting[id] = true
			b.waiting = append(b.waiting, id)
		}
		n := len(dst)
		b.inbox[id] = dst
		b.mu.Unlock()
		var err error
		select {
		case <-b.wake[id]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		b.mu.Lock()
		dst = b.inbox[id]
		b.inbox[id] = nil
		if err != nil && b.isWaiting[id] {
			b.isWaiting[id] = false
			b.waiting = removeID(b.waiting, id)
		}
		b.mu.Unlock()
		if len(dst) > n {
			return dst, nil // delivered directly; an ended ctx shows next time
		}
		if err != nil {
			return dst, err
		}
	}
}

func removeID(ids []int, id int) []int {
	for i, x := range ids {
		if x == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}

// deliverDirect copies msgs straight into the inboxes of waiting consumers,
// oldest waiter first, as far as their demand goes, and returns how many it
// delivered. It is only used while the buffer is empty, unpartitioned and
// not rate limited, so FIFO order and the limits hold. b.mu must be held.
func (b *Buffer[T]) deliverDirect(msgs []Message[T]) int {
	i, w := 0, 0
	// Share what there is over the waiters, as far as their demand goes.
	share := (len(msgs) + len(b.waiting) - 1) / len(b.waiting)
	for ; w < len(b.waiting) && i < len(msgs); w++ {
		id := b.waiting[w]
		k := min(b.outstanding[id], len(msgs)-i, share)
		if k == 0 || b.inbox[id] == nil {
			break
		}
		b.inbox[id] = append(b.inbox[id], msgs[i:i+k]...)
		b.outstanding[id] -= k
		b.total -= k
		b.delivered += int64(k)
		b.emitted += int64(k)
		b.isWaiting[id] = false
		b.signal(id)
		i += k
	}
	if w > 0 {
		b.waiting = b.waiting[:copy(b.waiting, b.waiting[w:])]
	}
	return i
}

// Stop tells the buffer the topology is shutting down: from now on the
// rate limit holds nothing back, so a drain never waits for an interval to
// pass. Producers may still emit until Close.
func (b *Buffer[T]) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopping = true
	b.rateChanged.Broadcast()
	b.demand.Broadcast()
}

// Close stops the buffer taking input: emitters get ErrClosed, and Take
// returns ErrClosed once a consumer has taken everything buffered for it.
func (b *Buffer[T]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, id := range b.waiting {
		b.isWaiting[id] = false
		b.signal(id)
	}
	b.waiting = b.waiting[:0]
	b.demand.Broadcast()
	b.space.Broadcast()
	b.rateChanged.Broadcast()
	if n := b.dropLog.Flush(); n > 0 && b.logger != nil {
		b.logger.Warn("stages: producer buffer full, messages dropped",
			"dropped", n, "total_dropped", b.dropped.Load(), "keep", b.keep.String())
	}
}

// SetRateLimit changes the rate limit; the zero RateLimit removes it. It
// takes effect at once, starts a new interval and wakes processors waiting
// for the old one to end. An invalid limit changes nothing and is returned
// as an error.
func (b *Buffer[T]) SetRateLimit(r RateLimit) error {
	if err := r.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate = r
	b.windowStart = time.Time{}
	b.windowUsed = 0
	b.rateChanged.Broadcast()
	b.announceDemandLocked()
	return nil
}

// RateLimit returns the current rate limit.
func (b *Buffer[T]) RateLimit() RateLimit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}

// BufferStats is a snapshot of a producer-stage buffer.
type BufferStats struct {
	Emitted     int64 // messages producers emitted, dropped ones included
	Delivered   int64 // messages handed to processors
	Dropped     int64 // messages the Keep policy dropped
	Failed      int64 // messages failed here: their PartitionBy panicked
	Buffered    int   // messages waiting now
	MaxBuffered int   // the most ever waiting at once
	Capacity    int   // how many can wait
	Demand      int   // messages processors asked for and did not get yet
	Promised    int   // demand told to producers and not yet emitted
}

// Stats returns a snapshot of the buffer's counters.
func (b *Buffer[T]) Stats() BufferStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BufferStats{
		Emitted:     b.emitted,
		Delivered:   b.delivered,
		Dropped:     b.dropped.Load(),
		Failed:      b.failed.Load(),
		Buffered:    b.buffered,
		MaxBuffered: b.maxBuffered,
		Capacity:    b.capacity,
		Demand:      b.total,
		Promised:    b.promised,
	}
}

// unmetDemand is the demand neither buffered nor promised, capped by the
// room left and by what the rate limit can let out in the current interval.
// b.mu must be held.
func (b *Buffer[T]) unmetDemand() int {
	var need, room int
	if b.partition == nil {
		need = b.total - b.buffered
		room = b.rings[0].room()
	} else {
		for i := range b.rings {
			need += max(0, b.outstanding[i]-b.rings[i].n)
			room += b.rings[i].room()
		}
	}
	n := min(need, room)
	if b.rateActive() {
		n = min(n, b.rateLeft(time.Now())-b.buffered)
	}
	return n - b.promised
}

// rateActive reports whether the rate limit holds messages back now.
// b.mu must be held.
func (b *Buffer[T]) rateActive() bool { return b.rate.Enabled() && !b.stopping }

// rateLeft is how many messages the current interval still lets out.
// b.mu must be held.
func (b *Buffer[T]) rateLeft(now time.Time) int {
	if b.windowStart.IsZero() || now.Sub(b.windowStart) >= b.rate.Interval {
		return b.rate.Messages
	}
	return b.rate.Messages - b.windowUsed
}

// rateReopens is how long until the rate limit lets more out, when it is
// what holds demand back; 0 otherwise. b.mu must be held.
func (b *Buffer[T]) rateReopens(now time.Time) time.Duration {
	if !b.rateActive() || b.windowStart.IsZero() || now.Sub(b.windowStart) >= b.rate.Interval ||
		b.rateLeft(now) > b.buffered+b.promised {
		// No window running, or it is over and the next one starts with
		// the next Take, which wakes the producers.
		return 0
	}
	return max(b.windowStart.Add(b.rate.Interval).Sub(now), time.Nanosecond)
}

// wakeConsumers wakes waiting consumers that can take what is buffered.
// b.mu must be held.
func (b *Buffer[T]) wakeConsumers() {
	if len(b.waiting) == 0 {
		return
	}
	if b.partition != nil {
		j := 0
		for _, id := range b.waiting {
			if b.rings[id].n > 0 && b.outstanding[id] > 0 {
				b.isWaiting[id] = false
				b.signal(id)
				continue
			}
			b.waiting[j] = id
			j++
		}
		b.waiting = b.waiting[:j]
		return
	}
	covered, n := 0, 0
	for _, id := range b.waiting {
		if covered >= b.rings[0].n {
			break
		}
		if b.outstanding[id] == 0 {
			continue
		}
		covered += b.outstanding[id]
		b.isWaiting[id] = false
		b.signal(id)
		n++
	}
	if n > 0 {
		j := 0
		for _, id := range b.waiting {
			if b.isWaiting[id] {
				b.waiting[j] = id
				j++
			}
		}
		b.waiting = b.waiting[:j]
	}
}

func (b *Buffer[T]) signal(id int) {
	select {
	case b.wake[id] <- struct{}{}:
	default:
	}
}

// allowLocked applies the rate limit to k messages: it returns how many
// may go now, or 0 and how long until the next interval. b.mu must be held.
func (b *Buffer[T]) allowLocked(k int) (int, time.Duration) {
	now := time.Now()
	if b.windowStart.IsZero() || now.Sub(b.windowStart) >= b.rate.Interval {
		b.windowStart = now
		b.windowUsed = 0
		// Producers waiting in Demand time their next look by the window.
		b.demand.Broadcast()
	}
	left := b.rate.Messages - b.windowUsed
	if left <= 0 {
		return 0, b.rate.Interval - now.Sub(b.windowStart)
	}
	k = min(k, left)
	b.windowUsed += k
	return k, 0
}

// partitionOf returns m's partition. A panicking PartitionBy yields
// partition 0 and the panic as an error, which fails the message.
func (b *Buffer[T]) partitionOf(m *Message[T]) (p int, err error) {
	defer func() {
		if v := recover(); v != nil {
			p, err = 0, newPanicError(v)
			b.failed.Add(1)
			if ok, n := b.panicLog.Allow(1); ok && b.logger != nil {
				b.logger.Error("stages: processor PartitionBy panicked; message failed and sent to partition 0",
					"panics", n, "panic", v, "stack", string(err.(*PanicError).Stack))
			}
		}
	}()
	return int(b.partition(m) % uint64(len(b.rings))), nil
}

// reportDrops counts dropped messages, offers them to OnDrop and logs them,
// at most once per log interval.
func (b *Buffer[T]) reportDrops(dropped []Message[T]) {
	n := int64(len(dropped))
	b.dropped.Add(n)
	if b.onDrop != nil {
		safely(b.logger, "OnDrop", func() { b.onDrop(dropped) }, "dropped", n)
	}
	if b.logger == nil {
		return
	}
	if ok, count := b.dropLog.Allow(n); ok {
		b.logger.Warn("stages: producer buffer full, messages dropped",
			"dropped", count, "total_dropped", b.dropped.Load(), "keep", b.keep.String())
	}
}

// ring is a bounded FIFO of messages. Its storage starts small and doubles
// as it fills, up to capacity, so a large BufferSize costs memory only when
// a burst actually needs it.
type ring[T any] struct {
	buf      []Message[T]
	head, n  int
	capacity int
}

// ringStart is the most slots a ring allocates before it is needed.
const ringStart = 1024

func newRing[T any](capacity int) ring[T] {
	return ring[T]{buf: make([]Message[T], min(capacity, ringStart)), capacity: capacity}
}

func (r *ring[T]) full() bool { return r.n == r.capacity }

// room is how many more messages the ring takes.
func (r *ring[T]) room() int { return r.capacity - r.n }

// grow makes storage for at least need messages (at most capacity),
// keeping their order.
func (r *ring[T]) grow(need int) {
	if need <= len(r.buf) {
		return
	}
	size := len(r.buf)
	for size < need {
		size *= 2
	}
	buf := make([]Message[T], min(size, r.capacity))
	k := copy(buf, r.buf[r.head:min(r.head+r.n, len(r.buf))])
	copy(buf[k:], r.buf[:r.n-k])
	r.buf, r.head = buf, 0
}

// push appends m and returns a pointer to the stored copy.
func (r *ring[T]) push(m Message[T]) *Message[T] {
	r.grow(r.n + 1)
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = m
	r.n++
	return &r.buf[i]
}

// pushAll appends as many of msgs as fit and returns how many did.
func (r *ring[T]) pushAll(msgs []Message[T]) int {
	k := min(len(msgs), r.capacity-r.n)
	r.grow(r.n + k)
	done := 0
	for done < k {
		i := r.head + r.n
		if i >= len(r.buf) {
			i -= len(r.buf)
		}
		c := copy(r.buf[i:min(len(r.buf), i+k-done)], msgs[done:k])
		done += c
		r.n += c
	}
	return k
}

func (r *ring[T]) popFront() Message[T] {
	m := r.buf[r.head]
	var zero Message[T]
	r.buf[r.head] = zero
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	if r.n == 0 {
		r.head = 0
	}
	return m
}

// popInto moves the k oldest messages to the end of dst. The slots are not
// cleared: the storage was needed once and stale messages in it never raise
// the memory bound; they are overwritten as the ring turns.
func (r *ring[T]) popInto(dst []Message[T], k int) []Message[T] {
	for k > 0 {
		end := min(r.head+k, len(r.buf))
		dst = append(dst, r.buf[r.head:end]...)
		moved := end - r.head
		k -= moved
		r.n -= moved
		r.head = end
		if r.head == len(r.buf) {
			r.head = 0
		}
	}
	if r.n == 0 {
		// Start over at the front: a buffer that mostly runs near empty keeps
		// reusing the same, cache-hot slots.
		r.head = 0
	}
	return dst
}
