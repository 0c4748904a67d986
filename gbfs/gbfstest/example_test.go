package gbfstest_test

import (
	"fmt"
	"io"

	"github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/gbfs/gbfstest"
)

// A fake v3.0 system of 120 stations over HTTP/2, read through its
// discovery file with the gbfs parsers.
func ExampleServer() {
	srv, err := gbfstest.NewServer(gbfstest.Config{Version: gbfs.V30, Stations: 120})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	get := func(url string) []byte {
		resp, err := srv.Client().Get(url)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	d, _ := gbfs.ParseDiscovery(get(srv.DiscoveryURL()), "en")
	status, _ := gbfs.ParseStationStatus(get(d.URL(gbfs.FeedStationStatus)))
	fmt.Println("version", status.Version, "ttl", status.TTL, "stations", len(status.Stations))
	fmt.Println("served rows recorded:", len(srv.Served()))
	// Output:
	// version 3.0 ttl 10s stations 120
	// served rows recorded: 120
}
