package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The preflight checks run before a topology starts, so that a sink that
// cannot be reached at all stops the run at once with one line naming the
// flag and the cause, instead of a drain that times out with "messages not
// acknowledged" (Kafka) or a retry loop that never ends (the loader). Once
// a run has started, an outage is a fault the topology rides out (spill,
// block), not a reason to stop.

// checkPostgres connects to the server behind -database-url and pings it.
func checkPostgres(ctx context.Context, pool *pgxpool.Pool, dsn string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		msg := redactedErr(err, dsn)
		if ctx.Err() != nil {
			msg = fmt.Sprintf("no answer within %v (-connect-timeout): %s", timeout, msg)
		}
		return fmt.Errorf("-database-url %s: cannot connect: %s", redactURL(dsn), oneLine(msg))
	}
	return nil
}

// checkKafka asks the cluster behind -kafka-brokers for its metadata.
func checkKafka(brokers string, timeout time.Duration) error {
	admin, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": brokers,
		"enable.metrics.push": false, "log_level": 0, "socket.connection.setup.timeout.ms": int(timeout / time.Millisecond)})
	if err != nil {
		return fmt.Errorf("-kafka-brokers %s: %v", brokers, err)
	}
	defer admin.Close()
	md, err := admin.GetMetadata(nil, false, int(timeout/time.Millisecond))
	if err != nil {
		return fmt.Errorf("-kafka-brokers %s: no broker answered within %v (-connect-timeout): %v", brokers, timeout, err)
	}
	if len(md.Brokers) == 0 {
		return fmt.Errorf("-kafka-brokers %s: the cluster lists no brokers", brokers)
	}
	return nil
}

// oneLine joins a multi-line error (pgx lists every address it tried,
// often twice) into one line without repeats.
func oneLine(s string) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		f = strings.TrimSpace(f)
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(f)
	}
	return b.String()
}
