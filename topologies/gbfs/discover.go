package gbfs

import (
	"context"
	"fmt"
	"io"
	"net/http"

	spec "github.com/causeway-go/causeway/gbfs"
)

// Feeds are the URLs of the files the pipeline polls.
type Feeds struct {
	StationStatus      string
	StationInformation string
}

// Discover reads a system's auto-discovery file (gbfs.json, either version)
// and returns the URLs of its station_status and station_information, in
// language lang (v2.3 lists feeds per language; "" takes the first).
func Discover(ctx context.Context, client *http.Client, url, lang string) (Feeds, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Feeds{}, fmt.Errorf("gbfs: discovery %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Feeds{}, fmt.Errorf("gbfs: discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return Feeds{}, fmt.Errorf("gbfs: discovery %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Feeds{}, fmt.Errorf("gbfs: discovery %s: %s", url, resp.Status)
	}
	d, err := spec.ParseDiscovery(body, lang)
	if err != nil {
		return Feeds{}, fmt.Errorf("gbfs: discovery %s: %w", url, err)
	}
	f := Feeds{StationStatus: d.URL(spec.FeedStationStatus), StationInformation: d.URL(spec.FeedStationInformation)}
	if f.StationStatus == "" {
		return Feeds{}, fmt.Errorf("gbfs: discovery %s lists no %s feed", url, spec.FeedStationStatus)
	}
	return f, nil
}
