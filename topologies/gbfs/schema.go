package gbfs

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
)

// Schema are the statements that create the pipeline's tables and the
// view: station_status (one row per report, (station_id, last_reported)
// its key), station_information (one row per station, upserted),
// station_changes (the change log the processors compute as rows flow) and
// station_changes_lag (the same log computed from station_status with
// LAG, for checking and for ad-hoc use). New runs them, idempotently.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS station_status (
		station_id text NOT NULL,
		last_reported timestamptz NOT NULL,
		num_bikes_available int NOT NULL,
		num_bikes_disabled int NOT NULL DEFAULT 0,
		num_docks_available int NOT NULL,
		num_docks_disabled int NOT NULL DEFAULT 0,
		is_installed bool NOT NULL,
		is_renting bool NOT NULL,
		is_returning bool NOT NULL,
		ingested_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (station_id, last_reported))`,
	`CREATE TABLE IF NOT EXISTS station_information (
		station_id text PRIMARY KEY,
		name text NOT NULL,
		short_name text NOT NULL DEFAULT '',
		lat double precision NOT NULL,
		lon double precision NOT NULL,
		address text NOT NULL DEFAULT '',
		capacity int NOT NULL DEFAULT 0,
		updated_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE TABLE IF NOT EXISTS station_changes (
		station_id text NOT NULL,
		at timestamptz NOT NULL,
		previous_at timestamptz NOT NULL,
		bikes_before int NOT NULL,
		bikes_after int NOT NULL,
		docks_before int NOT NULL,
		docks_after int NOT NULL,
		kind text NOT NULL,
		PRIMARY KEY (station_id, at))`,
	`CREATE OR REPLACE VIEW station_changes_lag AS
	SELECT station_id, at, previous_at, bikes_before, bikes_after, docks_before, docks_after,
		CASE
			WHEN was_installed AND was_renting AND was_returning AND NOT (is_installed AND is_renting AND is_returning) THEN 'went_offline'
			WHEN NOT (was_installed AND was_renting AND was_returning) AND is_installed AND is_renting AND is_returning THEN 'back_online'
			WHEN (was_installed, was_renting, was_returning) IS DISTINCT FROM (is_installed, is_renting, is_returning) THEN 'status_changed'
			WHEN bikes_after = 0 AND bikes_before > 0 THEN 'became_empty'
			WHEN docks_after = 0 AND docks_before > 0 THEN 'became_full'
			WHEN bikes_after < bikes_before THEN 'bikes_taken'
			WHEN bikes_after > bikes_before THEN 'bikes_returned'
			ELSE 'docks_changed'
		END AS kind
	FROM (
		SELECT station_id, last_reported AS at, lag(last_reported) OVER w AS previous_at,
			lag(num_bikes_available) OVER w AS bikes_before, num_bikes_available AS bikes_after,
			lag(num_docks_available) OVER w AS docks_before, num_docks_available AS docks_after,
			lag(is_installed) OVER w AS was_installed, is_installed,
			lag(is_renting) OVER w AS was_renting, is_renting,
			lag(is_returning) OVER w AS was_returning, is_returning
		FROM station_status
		WINDOW w AS (PARTITION BY station_id ORDER BY last_reported)
	) rows
	WHERE previous_at IS NOT NULL
		AND (bikes_before, docks_before, was_installed, was_renting, was_returning)
			IS DISTINCT FROM (bikes_after, docks_after, is_installed, is_renting, is_returning)`,
}

// The tables' columns the sink fills, in the order of the row functions.
var (
	StatusColumns = []string{"station_id", "last_reported", "num_bikes_available", "num_bikes_disabled",
		"num_docks_available", "num_docks_disabled", "is_installed", "is_renting", "is_returning"}
	InformationColumns = []string{"station_id", "name", "short_name", "lat", "lon", "address", "capacity", "updated_at"}
	ChangeColumns      = []string{"station_id", "at", "previous_at", "bikes_before", "bikes_after",
		"docks_before", "docks_after", "kind"}
)

// statusRow is a status record's row of station_status; nil for other
// records.
func statusRow(m *stages.Message[Record]) ([]any, error) {
	if m.Data.Kind != KindStatus {
		return nil, nil
	}
	s := &m.Data.Status
	return []any{s.StationID, s.LastReported, s.NumBikesAvailable, s.NumBikesDisabled,
		s.NumDocksAvailable, s.NumDocksDisabled, s.IsInstalled, s.IsRenting, s.IsReturning}, nil
}

// changeRow is a status record's row of station_changes; nil without a
// change.
func changeRow(m *stages.Message[Record]) ([]any, error) {
	c := m.Data.Change
	if m.Data.Kind != KindStatus || c == nil {
		return nil, nil
	}
	return []any{c.StationID, c.At, c.PreviousAt, c.BikesBefore, c.BikesAfter, c.DocksBefore, c.DocksAfter, c.Kind}, nil
}

// informationRow is an information record's row of station_information;
// nil for other records.
func informationRow(m *stages.Message[Record]) ([]any, error) {
	if m.Data.Kind != KindInformation {
		return nil, nil
	}
	i := &m.Data.Info
	return []any{i.StationID, i.Name, i.ShortName, i.Lat, i.Lon, i.Address, i.Capacity, updatedAt(m)}, nil
}

// updatedAt is when the record's document was fetched.
func updatedAt(m *stages.Message[Record]) time.Time {
	if d, ok := m.Metadata.(*poll.Document); ok && !d.Fetched.IsZero() {
		return d.Fetched
	}
	return time.Now()
}

// KafkaKey is a status record's Kafka key: its station id.
func KafkaKey(m *stages.Message[Record]) []byte { return []byte(m.Data.Status.StationID) }

// KafkaValue is a status record's Kafka value: the normalised row as JSON
// (station_id, last_reported in RFC 3339, the counts and flags).
func KafkaValue(m *stages.Message[Record]) ([]byte, error) {
	if m.Data.Kind != KindStatus {
		return nil, errors.New("gbfs: only station_status records go to Kafka")
	}
	return json.Marshal(&m.Data.Status)
}
