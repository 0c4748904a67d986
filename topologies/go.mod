module github.com/causeway-go/causeway/topologies

go 1.26.0

require (
	github.com/causeway-go/causeway v0.0.0-00010101000000-000000000000
	github.com/causeway-go/causeway/producers/kafka v0.0.0-00010101000000-000000000000
	github.com/causeway-go/causeway/stages/kafka v0.0.0-00010101000000-000000000000
	github.com/causeway-go/causeway/stages/postgres v0.0.0-00010101000000-000000000000
	github.com/confluentinc/confluent-kafka-go/v2 v2.11.1
	github.com/jackc/pgx/v5 v5.12.0
	github.com/reugn/go-streams v0.13.0
	github.com/twmb/franz-go v1.22.3
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.1 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
