// Package kafkalog forwards librdkafka's logs into log/slog, for the Kafka
// sink and the Kafka source alike.
package kafkalog

import (
	"context"
	"log/slog"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Forward logs librdkafka's events (syslog levels) to log until logs is
// closed: 0-3 as errors, 4 as warnings, 5-6 as info, 7 as debug.
func Forward(log *slog.Logger, logs chan ckafka.LogEvent) {
	for l := range logs {
		level := slog.LevelDebug
		switch {
		case l.Level <= 3:
			level = slog.LevelError
		case l.Level == 4:
			level = slog.LevelWarn
		case l.Level <= 6:
			level = slog.LevelInfo
		}
		log.Log(context.Background(), level, "librdkafka: "+l.Message, "client", l.Name, "tag", l.Tag)
	}
}
